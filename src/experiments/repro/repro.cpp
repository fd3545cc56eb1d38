// The repro framework (repro.h): options and config, the per-seed loop on a RunDir, results.json.
#include <chrono>
#include <cmath>
#include <map>

#include <fmt/format.h>

#include "entries.h"
#include "stablelearn/core/config.h"
#include "stablelearn/core/error.h"
#include "stablelearn/experiments/repro.h"

namespace stablelearn::experiments {

using nlohmann::json;

ReproCheck make_check(std::string name, double value, const std::string& comparison, double threshold) {
  SL_CHECK(comparison == "<=" || comparison == ">=" || comparison == "<" || comparison == ">", InternalError, "check '",
           name, "': comparison must be <=, >=, < or >");
  ReproCheck c{std::move(name), value, comparison, threshold, false};
  // false for NaN
  c.pass = comparison == "<=" ? value <= threshold
           : comparison == ">=" ? value >= threshold
           : comparison == "<"  ? value < threshold
                                : value > threshold;
  return c;
}

double ReproContext::option(const std::string& name) const {
  const auto it = options.find(name);
  SL_CHECK(it != options.end(), InternalError, "repro option '", name, "' is not declared by the entry");
  return it->second;
}

std::int64_t ReproContext::int_option(const std::string& name) const { return static_cast<std::int64_t>(std::llround(option(name))); }

const ReproEntry& find_repro(const std::string& name) {
  std::string known;
  for (const auto& e : repro_entries()) {
    if (e.name == name) return e;
    known += (known.empty() ? "" : ", ") + e.name;
  }
  SL_THROW(UsageError, "unknown reproduction '", name, "' (known: ", known, "; see `stablelearn repro list`)");
}

namespace {

struct Resolved {
  std::string toml;
  std::map<std::string, double> options;
};

Resolved resolve(const ReproRequest& r) {
  const auto& e = find_repro(r.name);
  SL_CHECK(r.seeds >= 1, UsageError, "--seeds must be at least 1, got ", r.seeds);
  ConfigWriter defaults;
  for (const auto& o : e.options) {
    const double v = r.quick ? o.quick : o.value;
    if (o.integer)
      defaults.put("options", o.name, static_cast<std::int64_t>(std::llround(v)));
    else
      defaults.put("options", o.name, v);
  }
  auto cfg = Config::from_string(defaults.to_string(), "repro " + r.name + " --set");
  for (const auto& s : r.overrides) cfg.set(s.rfind("options.", 0) == 0 ? s : "options." + s);
  cfg.check_sections({"options"});
  auto sec = cfg.section("options");
  Resolved out;
  ConfigWriter w;
  w.put("repro", "experiment", e.name);
  w.put("repro", "quick", r.quick);
  w.put("repro", "seeds", r.seeds);
  w.put("repro", "seed", static_cast<std::int64_t>(r.seed));
  for (const auto& o : e.options) {
    const double fallback = r.quick ? o.quick : o.value;
    double v = 0;
    if (o.integer) {
      const auto i = sec.get(o.name, static_cast<std::int64_t>(std::llround(fallback)));
      w.put("options", o.name, i);
      v = static_cast<double>(i);
    } else {
      v = sec.get(o.name, fallback);
      w.put("options", o.name, v);
    }
    SL_CHECK(std::isfinite(v) && v > 0, ConfigError, "repro ", e.name, ": option '", o.name, "' must be a positive number, got ", v);
    out.options[o.name] = v;
  }
  sec.finish();  // ConfigError naming an unknown key and listing the valid ones
  out.toml = w.to_string();
  return out;
}

json check_json(const ReproCheck& c) {
  return {{"name", c.name},
          {"value", std::isfinite(c.value) ? json(c.value) : json(nullptr)},
          {"comparison", c.comparison},
          {"threshold", c.threshold},
          {"pass", c.pass}};
}

}  // namespace

std::string resolve_repro_config(const ReproRequest& request) { return resolve(request).toml; }

json run_repro(const ReproRequest& request, ProgressReporter& progress) {
  const auto t0 = std::chrono::steady_clock::now();
  const auto& e = find_repro(request.name);
  const auto resolved = resolve(request);
  const auto run = RunDir::open(request.out, resolved.toml, RunDirOptions().resume(request.resume));
  ReproContext ctx;
  ctx.run = &run;
  ctx.quick = request.quick;
  ctx.seeds = request.seeds;
  ctx.seed = request.seed;
  ctx.options = resolved.options;
  ctx.progress = &progress;

  // One metrics.jsonl row per finished seed: {"seed_index", "seed", "seconds", "result"}.
  std::map<std::int64_t, json> done;
  for (auto& row : run.read_metrics())
    if (row.contains("seed_index") && row.contains("result")) done[row.at("seed_index").get<std::int64_t>()] = row;
  std::vector<json> results;
  std::vector<double> seconds;
  for (std::int64_t k = 0; k < request.seeds; ++k) {
    if (!done.count(k)) {
      progress.note(fmt::format("{}: seed {} ({}/{})", e.name, request.seed + static_cast<std::uint64_t>(k), k + 1, request.seeds));
      const auto ts = std::chrono::steady_clock::now();
      auto result = e.run_seed(ctx, k);
      const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - ts).count();
      done[k] = {{"seed_index", k}, {"seed", request.seed + static_cast<std::uint64_t>(k)}, {"seconds", s}, {"result", result}};
      run.append_metrics(done[k]);
    } else {
      progress.note(fmt::format("{}: seed {} done in an earlier call (metrics.jsonl)", e.name, k));
    }
    results.push_back(done[k].at("result"));
    seconds.push_back(done[k].at("seconds").get<double>());
  }
  const auto outcome = e.summarise(ctx, results);
  bool all = !outcome.checks.empty();
  json checks = json::array();
  for (const auto& c : outcome.checks) {
    checks.push_back(check_json(c));
    all = all && c.pass;
  }
  json out{{"experiment", e.name},
           {"paper", e.paper},
           {"claim", e.claim},
           {"setup", outcome.setup},
           {"metrics", outcome.metrics},
           {"checks", checks},
           {"verdict", all ? "reproduced" : "not reproduced"},
           {"quick", request.quick},
           {"seeds", request.seeds},
           {"seed", request.seed}};
  run.write_json("results.json", out);
  const double total = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  run.write_summary({{"experiment", e.name}, {"seed", request.seed}, {"seeds", request.seeds}, {"quick", request.quick},
                     {"seconds", total}, {"seed_seconds", seconds}, {"resumed", run.resumed()}, {"verdict", out.at("verdict")}});
  return out;
}

std::string repro_summary_text(const json& r) {
  std::string s = fmt::format("{}: {}\nclaim: {}\n\n", r.at("experiment").get<std::string>(), r.at("paper").get<std::string>(),
                              r.at("claim").get<std::string>());
  std::size_t width = 5;
  for (const auto& c : r.at("checks")) width = std::max(width, c.at("name").get<std::string>().size());
  s += fmt::format("{:<{}}  {:>12}  {:>2}  {:>10}  {}\n", "check", width, "value", "", "threshold", "pass");
  int passed = 0, n = 0;
  for (const auto& c : r.at("checks")) {
    const auto v = c.at("value").is_null() ? std::string("nan") : fmt::format("{:.4g}", c.at("value").get<double>());
    s += fmt::format("{:<{}}  {:>12}  {:>2}  {:>10.4g}  {}\n", c.at("name").get<std::string>(), width, v,
                     c.at("comparison").get<std::string>(), c.at("threshold").get<double>(), c.at("pass").get<bool>() ? "yes" : "NO");
    passed += c.at("pass").get<bool>();
    ++n;
  }
  s += fmt::format("\nverdict: {} ({}/{} checks pass)\n", r.at("verdict").get<std::string>(), passed, n);
  return s;
}

namespace repro {

std::vector<double> per_seed(const std::vector<json>& rows, const std::string& key) {
  std::vector<double> out;
  for (const auto& r : rows) out.push_back(r.at(key).is_null() ? std::nan("") : r.at(key).get<double>());
  return out;
}

std::vector<double> per_seed_at(const std::vector<json>& rows, const std::string& path) {
  const json::json_pointer ptr(path);
  std::vector<double> out;
  for (const auto& r : rows) out.push_back(r.at(ptr).is_null() ? std::nan("") : r.at(ptr).get<double>());
  return out;
}

double mean(const std::vector<double>& v) {
  double s = 0;
  for (double x : v) s += x;
  return v.empty() ? std::nan("") : s / static_cast<double>(v.size());
}

double std_dev(const std::vector<double>& v) {
  if (v.size() < 2) return 0.0;
  const double m = mean(v);
  double s = 0;
  for (double x : v) s += (x - m) * (x - m);
  return std::sqrt(s / static_cast<double>(v.size() - 1));
}

FmnistOptions fmnist_options(const ReproContext& ctx, std::int64_t k) {
  FmnistOptions data;
  data.samples = ctx.int_option("samples");
  data.test_samples = ctx.int_option("test_samples");
  data.hidden = {ctx.int_option("hidden")};
  data.seed = ctx.seed + static_cast<std::uint64_t>(k);
  return data;
}

double median(std::vector<double> v) {
  if (v.empty()) return std::nan("");
  for (double x : v)
    if (std::isnan(x)) return std::nan("");  // a failed seed makes the median undefined
  std::sort(v.begin(), v.end());
  const auto n = v.size();
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

std::function<void(std::int64_t, std::int64_t, const std::string&)> seed_progress(const ReproContext& ctx, std::int64_t k,
                                                                     const std::string& stage) {
  auto* p = ctx.progress;
  const auto label = fmt::format("seed {}/{}{}{}", k + 1, ctx.seeds, stage.empty() ? "" : " ", stage);
  return [p, label](std::int64_t done, std::int64_t total, const std::string& detail) { p->update(label, done, total, detail, "step"); };
}

}  // namespace repro

}  // namespace stablelearn::experiments
