// LCIA's adapter reuse and the learner (see lcia.h).
#include "stablelearn/continual/lcia.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <map>
#include <set>
#include <sstream>

#include <torch/torch.h>

#include "stablelearn/continual/strategies.h"
#include "stablelearn/continual/strategy.h"
#include "stablelearn/core/error.h"

namespace stablelearn::continual::lcia {

namespace {
// sklearn's ENGLISH_STOP_WORDS (the Glasgow Information Retrieval Group's list). Its three entries
// that cannot be tokens ("no one", "couldn't", "hasn't": a space or an apostrophe) are left out.
const char* const kStopWords =
    "a about above across after afterwards again against all almost alone along already also although always am among amongst "
    "amount an and another any anyhow anyone anything anyway anywhere are around as at back be became because become becomes "
    "becoming been before beforehand behind being below beside besides between beyond bill both bottom but by call can cannot "
    "cant co con could cry de describe detail do done down due during each eg eight either eleven else elsewhere empty enough "
    "etc even ever every everyone everything everywhere except few fifteen fifty fill find fire first five for former formerly "
    "forty found four from front full further get give go had has have he hence her here hereafter hereby herein hereupon hers "
    "herself him himself his how however hundred i ie if in inc indeed interest into is it its itself keep last latter latterly "
    "least less ltd made many may me meanwhile might mill mine more moreover most mostly move much must my myself name namely "
    "neither never nevertheless next nine no nobody none nor not nothing now nowhere of off often on once one only onto or "
    "other others otherwise our ours ourselves out over own part per perhaps please put rather re same see seem seemed seeming "
    "seems serious several she should show side since sincere six sixty so some somehow someone something sometime sometimes "
    "somewhere still such system take ten than that the their them themselves then thence there thereafter thereby therefore "
    "therein thereupon these they thick thin third this those though three through throughout thru thus to together too top "
    "toward towards twelve twenty two un under until up upon us very via was we well were what whatever when whence whenever "
    "where whereafter whereas whereby wherein whereupon wherever whether which while whither who whoever whole whom whose why "
    "will with within without would yet you your yours yourself yourselves";

const std::set<std::string>& stop_words() {
  static const std::set<std::string> s = [] {
    std::set<std::string> w;
    std::istringstream in(kStopWords);
    for (std::string t; in >> t;) w.insert(t);
    return w;
  }();
  return s;
}

bool word_char(char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '_'; }

std::vector<std::string> distinct(const std::vector<std::string>& v) {
  std::vector<std::string> out;
  for (const auto& s : v)
    if (std::find(out.begin(), out.end(), s) == out.end()) out.push_back(s);
  return out;
}
}  // namespace

bool is_stop_word(const std::string& word) { return stop_words().count(word) > 0; }

std::vector<std::string> tfidf_tokens(const std::string& s) {
  std::vector<std::string> out;
  std::size_t i = 0;
  while (i < s.size()) {
    if (!word_char(s[i])) {
      ++i;
      continue;
    }
    std::size_t j = i;
    std::string t;
    while (j < s.size() && word_char(s[j])) t.push_back(static_cast<char>(std::tolower(static_cast<unsigned char>(s[j++]))));
    if (t.size() >= 2 && !is_stop_word(t)) out.push_back(t);
    i = j;
  }
  return out;
}

double tfidf_cosine(const std::string& a, const std::string& b) {
  std::map<std::string, double> ca, cb;
  for (const auto& t : tfidf_tokens(a)) ca[t] += 1;
  for (const auto& t : tfidf_tokens(b)) cb[t] += 1;
  if (ca.empty() || cb.empty()) return 0.0;
  const double one_doc = std::log(3.0 / 2.0) + 1.0;  // ln((1 + n)/(1 + df)) + 1 with n = 2, df = 1
  auto weight = [&](const std::string& t, const std::map<std::string, double>& other) { return other.count(t) ? 1.0 : one_doc; };
  double dot = 0, na = 0, nb = 0;
  for (const auto& [t, c] : ca) {
    const double w = c * weight(t, cb);
    na += w * w;
    const auto it = cb.find(t);
    if (it != cb.end()) dot += w * it->second;  // a shared term weighs 1 in both
  }
  for (const auto& [t, c] : cb) {
    const double w = c * weight(t, ca);
    nb += w * w;
  }
  return dot / std::sqrt(na * nb);
}

double codebook_similarity(const std::vector<std::string>& instructions, const std::vector<std::string>& codebook) {
  const auto cur = distinct(instructions);
  SL_CHECK(!cur.empty() && !codebook.empty(), InternalError, "lcia::codebook_similarity: empty instructions or codebook");
  double s = 0;
  for (const auto& i : cur)
    for (const auto& c : codebook) s += tfidf_cosine(i, c);
  return s / static_cast<double>(cur.size() * codebook.size());
}

AdapterBank::AdapterBank(double threshold) : threshold_(threshold) {}

std::vector<double> AdapterBank::similarities(const std::vector<std::string>& instructions) const {
  std::vector<double> s;
  for (const auto& c : codebooks_) s.push_back(codebook_similarity(instructions, c));
  return s;
}

Selection AdapterBank::select(const std::vector<std::string>& instructions) {
  SL_CHECK(!instructions.empty(), InternalError, "lcia::AdapterBank::select: a task without instructions");
  Selection sel;
  sel.similarities = similarities(instructions);
  if (!sel.similarities.empty()) {
    const auto it = std::max_element(sel.similarities.begin(), sel.similarities.end());  // first on ties
    sel.max_similarity = *it;
    if (*it >= threshold_) {
      sel.adapter = it - sel.similarities.begin();
      sel.reused = true;
      auto& book = codebooks_[static_cast<std::size_t>(sel.adapter)];
      for (const auto& s : distinct(instructions))
        if (std::find(book.begin(), book.end(), s) == book.end()) book.push_back(s);
      return sel;
    }
  }
  sel.adapter = adapters();
  codebooks_.push_back(distinct(instructions));
  return sel;
}

std::int64_t AdapterBank::route(const std::vector<std::string>& instructions) const {
  SL_CHECK(!codebooks_.empty(), InternalError, "lcia::AdapterBank::route: no adapter yet");
  const auto s = similarities(instructions);
  const auto it = std::max_element(s.begin(), s.end());
  return *it >= threshold_ ? it - s.begin() : adapters() - 1;
}

// ---------------------------------------------------------------------------------------------
void LciaOptions::fields(options::Visitor& v) {
  v("merge", merge, "none | fixed | auto: no EMA, EMA with alpha = fallback, LCIA's automatic balance weight").one_of({"none", "fixed", "auto"});
  v("fallback", fallback, "fixed EMA weight, and the automatic weight's fallback").above(0.0).below(1.0);
  v("reuse", reuse, "instruction-based adapter reuse (false: one adapter for every task)");
  v("threshold", threshold, "reuse when the codebook similarity reaches it").in(0.0, 1.0);
  v("epochs", epochs, "epochs per task").at_least(1);
  v("batch", batch, "minibatch size").at_least(1);
  v("lr", lr, "SGD learning rate").above(0.0);
  v("momentum", momentum, "SGD momentum").in(0.0, 0.999);
}

Learner::Learner(LciaOptions o, AdapterForward forward, AdapterFactory fresh, std::uint64_t seed)
    : o_(std::move(o)), forward_(std::move(forward)), fresh_(std::move(fresh)), bank_(o_.threshold),
      gen_(at::detail::createCPUGenerator(seed)) {
  options::check(o_, "lcia");
}

Selection Learner::learn_task(const torch::Tensor& x, const torch::Tensor& y, const std::vector<std::string>& instructions) {
  SL_CHECK(x.size(0) == y.size(0) && x.size(0) > 0, ShapeError, "lcia::Learner::learn_task: ", x.size(0), " inputs, ", y.size(0), " labels");
  Selection sel;
  if (o_.reuse) {
    sel = bank_.select(instructions);
  } else {
    sel.reused = !adapters_.empty();
  }
  if (sel.adapter >= adapters()) {
    std::vector<torch::Tensor> w;
    for (const auto& t : fresh_()) w.push_back(t.detach().clone());
    adapters_.push_back(std::move(w));
  }
  auto& w = adapters_[static_cast<std::size_t>(sel.adapter)];
  for (auto& t : w) t.set_requires_grad(true);

  Context ctx;
  ctx.params = w;
  std::unique_ptr<EmaMerge> ema;
  if (o_.merge != "none") {
    EmaMergeOptions eo;
    eo.fallback = o_.fallback;
    eo.automatic = o_.merge == "auto";
    ema = std::make_unique<EmaMerge>(eo);
    ema->before_task(ctx);  // θ* = θ at the task's start
  }
  alphas_.clear();
  torch::optim::SGD opt(w, torch::optim::SGDOptions(o_.lr).momentum(o_.momentum));
  const auto n = x.size(0);
  for (std::int64_t e = 0; e < o_.epochs; ++e) {
    const auto perm = torch::randperm(n, gen_, torch::TensorOptions().dtype(torch::kInt64));
    for (std::int64_t b = 0; b < n; b += o_.batch) {
      const auto idx = perm.slice(0, b, std::min(n, b + o_.batch));
      const auto loss = torch::nn::functional::cross_entropy(forward_(x.index_select(0, idx), w), y.index_select(0, idx));
      opt.zero_grad();
      loss.backward();
      if (ema) ema->after_backward(ctx);
      opt.step();
      if (ema) {
        ema->after_step(ctx, {});
        const auto& a = ema->last_alphas();
        double s = 0;
        for (double v : a) s += v;
        alphas_.push_back(a.empty() ? 0.0 : s / static_cast<double>(a.size()));
      }
    }
  }
  if (ema) ema->after_task(ctx);  // θ ← θ*
  for (auto& t : w) {
    t.mutable_grad() = torch::Tensor();
    t.set_requires_grad(false);
  }
  return sel;
}

std::int64_t Learner::route(const std::vector<std::string>& instructions) const { return o_.reuse ? bank_.route(instructions) : 0; }

torch::Tensor Learner::predict(const torch::Tensor& x, const std::vector<std::string>& instructions) const {
  SL_CHECK(!adapters_.empty(), InternalError, "lcia::Learner::predict: no task learned yet");
  const auto n = x.size(0);
  SL_CHECK(instructions.size() == 1 || static_cast<std::int64_t>(instructions.size()) == n, ShapeError,
           "lcia::Learner::predict: one instruction or one per sample (", n, "), got ", instructions.size());
  torch::NoGradGuard ng;
  auto logits_of = [&](const torch::Tensor& xs, std::int64_t a) { return forward_(xs, adapters_[static_cast<std::size_t>(a)]); };
  if (instructions.size() == 1) return logits_of(x, route(instructions)).argmax(1);
  std::map<std::string, std::int64_t> routed;
  std::vector<std::int64_t> to(static_cast<std::size_t>(n));
  for (std::int64_t i = 0; i < n; ++i) {
    const auto& s = instructions[static_cast<std::size_t>(i)];
    auto it = routed.find(s);
    if (it == routed.end()) it = routed.emplace(s, route({s})).first;
    to[static_cast<std::size_t>(i)] = it->second;
  }
  const auto dest = torch::tensor(to, torch::kInt64);
  auto out = torch::empty({n}, torch::kInt64);
  for (std::int64_t a = 0; a < adapters(); ++a) {
    const auto rows = (dest == a).nonzero().squeeze(1);
    if (rows.numel() == 0) continue;
    out.index_put_({rows}, logits_of(x.index_select(0, rows), a).argmax(1));
  }
  return out;
}

}  // namespace stablelearn::continual::lcia
