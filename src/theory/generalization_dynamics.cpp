#include "stablelearn/theory/generalization_dynamics.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include <torch/torch.h>

#include "stablelearn/core/error.h"

namespace stablelearn::theory {

namespace {

constexpr double kPi = 3.14159265358979323846;
const double kInf = std::numeric_limits<double>::infinity();

void check_load(double load) {
  SL_CHECK(std::isfinite(load) && load > 0, ConfigError, "load: must be > 0 (alpha = P/N), got ", load);
}

void check_times(const std::vector<double>& times) {
  for (double t : times)
    SL_CHECK(!std::isnan(t) && t >= 0, ConfigError, "times: every time must be >= 0 (+inf allowed), got ", t);
}

// Nodes λ_j and weights of the midpoint rule for ∫ ρ f over the continuous part (see mp_integral).
void mp_nodes(double load, std::int64_t points, std::vector<double>& lambda, std::vector<double>& weight) {
  check_load(load);
  SL_CHECK(points >= 8, ConfigError, "points: must be >= 8, got ", points);
  const auto [lo, hi] = mp_support(load);
  const double r = (hi - lo) / 2, h = kPi / static_cast<double>(points);
  lambda.resize(static_cast<std::size_t>(points));
  weight.resize(static_cast<std::size_t>(points));
  for (std::int64_t j = 0; j < points; ++j) {
    const double th = (static_cast<double>(j) + 0.5) * h, s = std::sin(th);
    // λ = m + r cos θ, written for accuracy near λ₋ = 0 (α = 1): m − r = λ₋ and m + r cos θ =
    // λ₋ + r (1 + cos θ), with 1 + cos θ = 2 cos²(θ/2).
    const double c = std::cos(th / 2);
    const double l = lo + 2 * r * c * c;
    lambda[static_cast<std::size_t>(j)] = l;
    weight[static_cast<std::size_t>(j)] = load * r * r * s * s / (2 * kPi * l) * h;
  }
}

}  // namespace

void TeacherStudentOptions::fields(options::Visitor& v) {
  v("inputs", inputs, "N, the input dimension").at_least(1);
  v("load", load, "alpha = P/N, samples per input dimension (P = round(alpha N))").above(0.0);
  v("teacher_std", teacher_std, "sigma_wbar, the teacher's weight standard deviation").at_least(0.0);
  v("noise_std", noise_std, "sigma_eps, the label noise's standard deviation").at_least(0.0);
  v("init_std", init_std, "sigma_w0, the student's initial weight standard deviation").at_least(0.0);
}

void TeacherStudentOptions::cross_check() const {
  SL_CHECK(samples() >= 1, ConfigError, "load: alpha N = ", load * static_cast<double>(inputs),
           " rounds to no samples (N = ", inputs, ")");
}

std::int64_t TeacherStudentOptions::samples() const {
  return static_cast<std::int64_t>(std::llround(load * static_cast<double>(inputs)));
}

std::pair<double, double> mp_support(double load) {
  check_load(load);
  const double q = 1 / std::sqrt(load);
  return {(1 - q) * (1 - q), (1 + q) * (1 + q)};
}

double mp_density(double lambda, double load) {
  const auto [lo, hi] = mp_support(load);
  if (!(lambda > lo && lambda < hi) || lambda <= 0) return 0;
  return load * std::sqrt((hi - lambda) * (lambda - lo)) / (2 * kPi * lambda);
}

double mp_zero_mass(double load) {
  check_load(load);
  return std::max(0.0, 1 - load);
}

double mp_integral(double load, const std::function<double(double)>& f, std::int64_t points) {
  std::vector<double> lambda, weight;
  mp_nodes(load, points, lambda, weight);
  double s = 0;
  for (std::size_t j = 0; j < lambda.size(); ++j) s += weight[j] * f(lambda[j]);
  return s;
}

std::vector<double> mp_generalization_error(const TeacherStudentOptions& o, const std::vector<double>& times, std::int64_t points) {
  options::check(o);
  check_times(times);
  std::vector<double> lambda, weight;
  mp_nodes(o.load, points, lambda, weight);
  const double a = o.load, s2 = o.noise_std * o.noise_std, start = o.init_std * o.init_std + o.teacher_std * o.teacher_std;
  std::vector<double> out;
  out.reserve(times.size());
  for (double t : times) {
    if (std::isinf(t)) {
      out.push_back(asymptotic_error(o));
      continue;
    }
    double s = 0;
    for (std::size_t j = 0; j < lambda.size(); ++j) {
      const double l = lambda[j], decay = std::exp(-l * t), grown = -std::expm1(-l * t);
      s += weight[j] * (start * decay * decay + s2 / (a * l) * grown * grown);
    }
    out.push_back(s2 + mp_zero_mass(a) * start + s);
  }
  return out;
}

double asymptotic_error(const TeacherStudentOptions& o) {
  options::check(o);
  const double a = o.load, s2 = o.noise_std * o.noise_std;
  const double start = o.init_std * o.init_std + o.teacher_std * o.teacher_std;
  if (a > 1) return s2 + s2 / (a - 1);
  if (a < 1) return s2 + (1 - a) * start + s2 * a / (1 - a);
  return s2 > 0 ? kInf : 0.0;  // α = 1: the noise term diverges; without noise every mode converges
}

double finite_size_asymptotic_error(const TeacherStudentOptions& o) {
  options::check(o);
  const double n = static_cast<double>(o.inputs), p = static_cast<double>(o.samples()), s2 = o.noise_std * o.noise_std;
  const double start = o.init_std * o.init_std + o.teacher_std * o.teacher_std;
  const double frozen = p < n ? (n - p) / n * start : 0.0;
  if (s2 == 0) return frozen;
  if (p > n + 1) return s2 + s2 * n / (p - n - 1);
  if (p < n - 1) return s2 + frozen + s2 * p / (n - p - 1);
  return kInf;
}

double mp_optimal_stopping_time(const TeacherStudentOptions& o, double t_lo, double t_hi) {
  SL_CHECK(t_lo > 0 && t_hi > t_lo && std::isfinite(t_hi), ConfigError, "t_lo, t_hi: expected 0 < t_lo < t_hi < inf, got ", t_lo,
           ", ", t_hi);
  const auto err = [&](double s) { return mp_generalization_error(o, {std::exp(s)})[0]; };
  const int n = 200;
  const double s0 = std::log(t_lo), s1 = std::log(t_hi), ds = (s1 - s0) / (n - 1);
  int best = 0;
  double best_v = kInf;
  for (int i = 0; i < n; ++i) {
    const double v = err(s0 + ds * i);
    if (v < best_v) best_v = v, best = i;
  }
  if (best == n - 1) return t_hi;
  double a = s0 + ds * std::max(0, best - 1), b = s0 + ds * std::min(n - 1, best + 1);
  const double g = (std::sqrt(5.0) - 1) / 2;
  double c = b - g * (b - a), d = a + g * (b - a), fc = err(c), fd = err(d);
  for (int it = 0; it < 60 && b - a > 1e-10; ++it) {
    if (fc < fd) {
      b = d, d = c, fd = fc, c = b - g * (b - a), fc = err(c);
    } else {
      a = c, c = d, fc = fd, d = a + g * (b - a), fd = err(d);
    }
  }
  return std::exp((a + b) / 2);
}

torch::Tensor LinearFlow::at(const std::vector<double>& times) const {
  check_times(times);
  const auto t = torch::tensor(times, rates.options());
  const auto k = -torch::expm1(-torch::outer(rates, t));  // [r, T]; t = +inf gives 1
  const auto coeff = solution - directions.t().mv(init);  // [r]
  return init.unsqueeze(1) + directions.mm(k * coeff.unsqueeze(1));
}

LinearFlow least_squares_flow(const torch::Tensor& features, const torch::Tensor& targets, const torch::Tensor& init) {
  SL_CHECK(features.dim() == 2 && targets.dim() == 1 && init.dim() == 1 && targets.size(0) == features.size(0) &&
               init.size(0) == features.size(1),
           ShapeError, "least_squares_flow: features ", features.sizes(), ", targets ", targets.sizes(), ", init ", init.sizes(),
           ": expected [P, D], [P], [D]");
  SL_CHECK(features.size(0) >= 1, ShapeError, "least_squares_flow: no samples");
  SL_CHECK(torch::isfinite(features).all().item<bool>() && torch::isfinite(targets).all().item<bool>() &&
               torch::isfinite(init).all().item<bool>(),
           DataError, "least_squares_flow: NaN or infinite values in the features, targets or init");
  const auto p = features.size(0), d = features.size(1);
  const auto [u, s, vh] = torch::linalg_svd(features, /*full_matrices=*/false);
  const double eps = features.scalar_type() == torch::kFloat64 ? std::numeric_limits<double>::epsilon()
                                                                  : static_cast<double>(std::numeric_limits<float>::epsilon());
  const double smax = s.numel() > 0 ? s.max().item<double>() : 0.0;
  const auto keep = torch::nonzero(s > static_cast<double>(std::max(p, d)) * eps * smax).squeeze(1);
  LinearFlow f;
  f.init = init;
  const auto sk = s.index_select(0, keep);
  f.directions = vh.index_select(0, keep).t().contiguous();
  f.rates = sk * sk / static_cast<double>(p);
  f.solution = u.index_select(1, keep).t().mv(targets) / sk;
  return f;
}

TeacherStudentData sample_teacher_student(const TeacherStudentOptions& o, at::Generator& gen) {
  options::check(o);
  const auto f64 = torch::TensorOptions().dtype(torch::kFloat64);
  const auto n = o.inputs, p = o.samples();
  TeacherStudentData d;
  d.inputs = torch::randn({p, n}, gen, f64);
  d.teacher = torch::randn({n}, gen, f64) * o.teacher_std;
  d.noise = torch::randn({p}, gen, f64) * o.noise_std;
  d.init = torch::randn({n}, gen, f64) * o.init_std;  // drawn even when σ_w0 = 0: the same data for every σ_w0
  d.targets = d.inputs.mv(d.teacher) / std::sqrt(static_cast<double>(n)) + d.noise;
  return d;
}

ErrorCurve teacher_student_errors(const TeacherStudentData& data, const TeacherStudentOptions& o, const std::vector<double>& times,
                                  const torch::Tensor& init) {
  options::check(o);
  const double rn = std::sqrt(static_cast<double>(data.inputs.size(1)));
  const auto w0 = init.defined() ? init : data.init;
  const auto flow = least_squares_flow(data.inputs, data.targets, w0 / rn);
  const auto u = flow.at(times);  // [N, T], u = w/√N
  const auto test = (u - (data.teacher / rn).unsqueeze(1)).pow(2).sum(0) + o.noise_std * o.noise_std;
  const auto train = (data.targets.unsqueeze(1) - data.inputs.mm(u)).pow(2).mean(0);
  ErrorCurve c;
  for (std::int64_t i = 0; i < test.size(0); ++i) {
    c.test.push_back(test[i].item<double>());
    c.train.push_back(train[i].item<double>());
  }
  return c;
}

torch::Tensor relu_features(const torch::Tensor& inputs, const torch::Tensor& first_layer) {
  SL_CHECK(inputs.dim() == 2 && first_layer.dim() == 2 && inputs.size(1) == first_layer.size(1), ShapeError,
           "relu_features: inputs ", inputs.sizes(), ", first layer ", first_layer.sizes(), ": expected [M, N], [H, N]");
  const double n = static_cast<double>(inputs.size(1)), h = static_cast<double>(first_layer.size(0));
  return torch::relu(inputs.mm(first_layer.t()) / std::sqrt(n)) / std::sqrt(h);
}

ErrorCurve random_features_errors(const TeacherStudentData& data, const TeacherStudentOptions& o, std::int64_t width,
                                  const std::vector<double>& times, std::int64_t test_samples, at::Generator& gen) {
  options::check(o);
  SL_CHECK(width >= 1, ConfigError, "width: must be >= 1, got ", width);
  SL_CHECK(test_samples >= 1, ConfigError, "test_samples: must be >= 1, got ", test_samples);
  const auto n = data.inputs.size(1);
  const auto f = torch::randn({width, n}, gen, data.inputs.options());
  const auto phi = relu_features(data.inputs, f);
  const auto flow = least_squares_flow(phi, data.targets, torch::zeros({width}, phi.options()));
  const auto a = flow.at(times);  // [H, T]
  const auto x = torch::randn({test_samples, n}, gen, data.inputs.options());
  const auto clean = x.mv(data.teacher) / std::sqrt(static_cast<double>(n));
  const auto test = (clean.unsqueeze(1) - relu_features(x, f).mm(a)).pow(2).mean(0) + o.noise_std * o.noise_std;
  const auto train = (data.targets.unsqueeze(1) - phi.mm(a)).pow(2).mean(0);
  ErrorCurve c;
  for (std::int64_t i = 0; i < test.size(0); ++i) {
    c.test.push_back(test[i].item<double>());
    c.train.push_back(train[i].item<double>());
  }
  return c;
}

}  // namespace stablelearn::theory
