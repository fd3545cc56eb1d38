#include "stablelearn/rl/search.h"

#include <cstring>

#include "stablelearn/core/error.h"

namespace stablelearn::rl {

namespace {
constexpr std::uint64_t kQuestionSalt = 0x5345415243483076ULL;  // "SEARCH0v": question streams apart from the copies'
}  // namespace

SearchQuestion search_question(std::uint64_t id, double hub) {
  SL_CHECK(hub >= 0 && hub <= 1, ConfigError, "env.hub: must be in [0, 1], got ", hub);
  SearchQuestion q;
  SplitMix64 rng{stream_seed(kQuestionSalt, static_cast<std::int64_t>(id & 0x7FFFFFFFFFFFFFFFULL))};
  const auto E = static_cast<std::uint64_t>(SearchQuestion::entities);
  for (auto& f : q.facts) f = rng.uniform01() < static_cast<float>(hub) ? 0 : static_cast<std::int32_t>(rng.next() % E);
  q.start = static_cast<std::int32_t>(rng.next() % E);
  q.hops = 1 + static_cast<std::int32_t>(rng.next() % static_cast<std::uint64_t>(SearchQuestion::max_hops));
  std::int32_t x = q.start;
  for (std::int32_t j = 0; j < q.hops; ++j) {
    q.path[static_cast<std::size_t>(j)] = static_cast<std::int32_t>(rng.next() % static_cast<std::uint64_t>(SearchQuestion::relations));
    x = q.fact(x, q.path[static_cast<std::size_t>(j)]);
  }
  q.answer = x;
  return q;
}

Search::Search(const EnvOptions& o)
    : n_(o.num_envs),
      max_steps_(o.max_steps == 0 ? default_max_steps : o.max_steps),
      levels_(o.levels),
      start_level_(o.start_level),
      group_(o.group),
      hub_(o.hub),
      auto_reset_(o.auto_reset) {
  SL_CHECK(o.num_envs >= 1 && o.num_envs <= (std::int64_t{1} << 24), ConfigError, "env.num_envs: must be in [1, 2^24], got ",
           o.num_envs);
  SL_CHECK(o.max_steps >= 0 && o.max_steps <= 64, ConfigError,
           "env.max_steps: must be in [0, 64] (0 = Search-v0's 5: at most 4 tool calls, then an answer), got ", o.max_steps);
  SL_CHECK(o.levels >= 0, ConfigError, "env.levels: must be >= 0 (0 = unlimited questions), got ", o.levels);
  SL_CHECK(o.start_level >= 0, ConfigError, "env.start_level: must be >= 0, got ", o.start_level);
  SL_CHECK(o.grid == 0, ConfigError, "env.grid: Search-v0 has no grid; leave it 0");
  SL_CHECK(o.hub >= 0 && o.hub <= 1, ConfigError, "env.hub: must be in [0, 1], got ", o.hub);
  SL_CHECK(o.group >= 1 && o.num_envs % o.group == 0, ConfigError, "env.group: must be >= 1 and divide num_envs = ",
           o.num_envs, ", got ", o.group);
  const auto n = static_cast<std::size_t>(n_);
  q_.assign(n, SearchQuestion{});
  qid_.assign(n, 0);
  cur_.assign(n, 0);
  calls_.assign(n, 0);
  ended_.assign(n, 0);
  rng_.assign(n, SplitMix64{});
  for (std::int64_t i = 0; i < n_; ++i) rng_[i].state = stream_seed(0, i / group_);
}

std::int64_t Search::check_index(std::int64_t i) const {
  SL_CHECK(i >= 0 && i < n_, UsageError, name_, ": copy index ", i, " out of range [0, ", n_, ")");
  return i;
}

void Search::reset_one(std::int64_t i) {
  const auto u = rng_[i].next();
  const std::uint64_t span = levels_ > 0 ? static_cast<std::uint64_t>(levels_) : (std::uint64_t{1} << 31);
  const auto id = static_cast<std::uint64_t>(start_level_) + u % span;
  if (qid_[i] != id || !started_) {
    q_[i] = search_question(id, hub_);
    qid_[i] = id;
  }
  cur_[i] = q_[i].start;
  calls_[i] = 0;
  ended_[i] = 0;
}

void Search::write_obs(std::int64_t i, float* o) const {
  std::memset(o, 0, sizeof(float) * static_cast<std::size_t>(obs_dim()));
  const auto& q = q_[i];
  o[q.start] = 1.f;
  float* path = o + entities;
  for (std::int32_t j = 0; j < q.hops; ++j) path[j * relations + q.path[static_cast<std::size_t>(j)]] = 1.f;
  float* hops = path + max_hops * relations;
  hops[q.hops - 1] = 1.f;
  float* calls = hops + max_hops;
  calls[calls_[i]] = 1.f;
  float* cur = calls + max_steps_;
  cur[cur_[i]] = 1.f;
}

void Search::reset(std::uint64_t seed, float* obs) {
  for (std::int64_t i = 0; i < n_; ++i) rng_[i].state = stream_seed(seed, i / group_);
  for (std::int64_t i = 0; i < n_; ++i) {
    reset_one(i);
    write_obs(i, obs + obs_dim() * i);
  }
  started_ = true;
}

void Search::reset_env(std::int64_t i, float* obs_i) {
  SL_CHECK(started_, UsageError, name_, ": reset_env() before reset(seed)");
  reset_one(check_index(i));
  write_obs(i, obs_i);
}

void Search::step(const std::int32_t* actions, float* obs, float* reward, std::uint8_t* terminated,
                  std::uint8_t* truncated, float* final_obs) {
  SL_CHECK(started_, UsageError, name_, ": step() before reset(seed)");
  const auto A = static_cast<std::int32_t>(num_actions());
  for (std::int64_t i = 0; i < n_; ++i)
    SL_CHECK(actions[i] >= 0 && actions[i] < A, UsageError, name_, ": action of copy ", i, " is ", actions[i],
             "; expected 0..", num_lookups - 1, " (lookup relation a of the current entity) or ", num_lookups, "..", A - 1,
             " (answer entity a - ", num_lookups, ")");
  if (!auto_reset_)
    for (std::int64_t i = 0; i < n_; ++i)
      SL_CHECK(!ended_[i], UsageError, name_, ": copy ", i,
               " is stepped after its episode ended; call reset_env(i) first (or enable auto_reset)");
  const auto d = obs_dim();
  for (std::int64_t i = 0; i < n_; ++i) {
    const std::int32_t a = actions[i];
    bool term = false, trunc = false;
    float r = 0.f;
    if (a >= num_lookups) {
      term = true;
      r = (a - num_lookups) == q_[i].answer ? 1.f : 0.f;
    } else if (calls_[i] + 1 >= max_steps_) {
      trunc = true;  // the budget is spent: the lookup is refused and the episode ends unanswered
    } else {
      cur_[i] = q_[i].fact(cur_[i], a);
      ++calls_[i];
    }
    reward[i] = r;
    terminated[i] = term;
    truncated[i] = trunc;
    write_obs(i, obs + d * i);
    if (end_copy_step(term || trunc, auto_reset_, obs + d * i, final_obs ? final_obs + d * i : nullptr, d, [&] {
          reset_one(i);
          write_obs(i, obs + d * i);
        }))
      ended_[i] = 1;
  }
}

}  // namespace stablelearn::rl
