// Search-v0: questions a function of their id with the answer found here by following the facts
// along the path, a scripted policy that reads only the observation answering every question right
// with exactly k tool calls, wrong answers earning 0, lookups returning the fact, the call budget
// (truncation, the refused lookup), the hub prior's frequency, seeding (per copy, per group, level
// splits) and bad input.
#include "stablelearn/rl/search.h"

#include <gtest/gtest.h>

#include <map>
#include <set>
#include <vector>

#include "stablelearn/core/error.h"

namespace sl = stablelearn;
using sl::rl::EnvOptions;
using sl::rl::Search;
using sl::rl::SearchQuestion;

namespace {

struct Buffers {
  Buffers(std::int64_t n, std::int64_t d) : obs(n * d), fin(n * d), rew(n), term(n), trunc(n), act(n, 0) {}
  std::vector<float> obs, fin, rew;
  std::vector<std::uint8_t> term, trunc;
  std::vector<std::int32_t> act;
};
void step(Search& env, Buffers& b) {
  env.step(b.act.data(), b.obs.data(), b.rew.data(), b.term.data(), b.trunc.data(), b.fin.data());
}

// The index of the single 1 in o[0, n) (−1 if none; fails on several).
int one_hot(const float* o, int n) {
  int at = -1;
  for (int k = 0; k < n; ++k)
    if (o[k] == 1.f) {
      EXPECT_EQ(at, -1) << "two ones in a one-hot block";
      at = k;
    } else {
      EXPECT_EQ(o[k], 0.f);
    }
  return at;
}

// The optimal policy written from the observation's layout alone (8 + 9 + 3 + max_steps + 8).
std::int32_t scripted(const float* o, int max_steps) {
  const int E = 8, R = 3, H = 3;
  const float* path = o + E;
  const int k = one_hot(path + H * R, H) + 1;
  const int calls = one_hot(path + H * R + H, max_steps);
  const int cur = one_hot(path + H * R + H + max_steps, E);
  if (calls < k) return one_hot(path + calls * R, R);
  return R + cur;
}

// x_k along the path, from the facts.
int follow(const SearchQuestion& q) {
  int x = q.start;
  for (int j = 0; j < q.hops; ++j) x = q.fact(x, q.path[j]);
  return x;
}

}  // namespace

TEST(Search, QuestionsAreFunctionsOfTheirIdAndTheAnswerFollowsThePath) {
  std::map<int, int> hops;
  double hub = 0, facts = 0, zero = 0;
  for (std::uint64_t id = 0; id < 3000; ++id) {
    for (int f : sl::rl::search_question(id).facts) zero += f == 0;  // no hub: P(f = 0) = 1/8
    const auto q = sl::rl::search_question(id, 0.3), again = sl::rl::search_question(id, 0.3);
    EXPECT_EQ(q.facts, again.facts);
    EXPECT_EQ(q.start, again.start);
    EXPECT_EQ(q.path, again.path);
    ASSERT_TRUE(q.hops >= 1 && q.hops <= 3) << q.hops;
    ++hops[q.hops];
    EXPECT_EQ(q.answer, follow(q)) << id;
    for (int j = q.hops; j < 3; ++j) EXPECT_EQ(q.path[j], 0);
    for (int f : q.facts) {
      ASSERT_TRUE(f >= 0 && f < 8);
      hub += f == 0;
      facts += 1;
    }
  }
  // k uniform on {1, 2, 3}: 1000 expected each, binomial sd ≈ 26.
  for (int k = 1; k <= 3; ++k) EXPECT_NEAR(hops[k], 1000, 130) << k;
  // Hub 0.3: P(f = 0) = 0.3 + 0.7 / 8 = 0.3875 over 72000 facts (sd ≈ 0.0018); no hub: 0.125 (sd 0.0012).
  EXPECT_NEAR(hub / facts, 0.3875, 0.01);
  EXPECT_NEAR(zero / facts, 0.125, 0.008);
  EXPECT_THROW(sl::rl::search_question(1, 1.5), sl::ConfigError);
  EXPECT_NE(sl::rl::search_question(1).facts, sl::rl::search_question(2).facts);
}

TEST(Search, ScriptedPolicyFromTheObservationIsAlwaysRightWithKCalls) {
  EnvOptions o;
  o.num_envs = 500;  // auto-reset: a copy's later episodes are ignored, as evaluate() does
  Search env(o);
  const auto d = env.obs_dim();
  ASSERT_EQ(d, 33);
  ASSERT_EQ(env.num_actions(), 11);
  Buffers b(500, d);
  env.reset(11, b.obs.data());
  std::vector<int> done(500, 0), hops(500);
  for (int i = 0; i < 500; ++i) hops[i] = env.question(i).hops;
  for (int t = 0; t < 5; ++t) {
    for (int i = 0; i < 500; ++i) b.act[i] = scripted(b.obs.data() + i * d, 5);
    step(env, b);
    for (int i = 0; i < 500; ++i) {
      if (done[i]) continue;
      if (b.term[i]) {
        done[i] = 1;
        EXPECT_EQ(b.rew[i], 1.f) << i;
        EXPECT_EQ(t, hops[i]) << i;  // answered at step k + 1, after exactly k tool calls
        EXPECT_EQ(one_hot(b.fin.data() + i * d + 20, 5), hops[i]) << i;
      } else {
        EXPECT_EQ(b.rew[i], 0.f);
        EXPECT_FALSE(b.trunc[i]);
        EXPECT_EQ(env.calls(i), t + 1);
      }
    }
  }
  for (int i = 0; i < 500; ++i) EXPECT_TRUE(done[i]) << i;
  // The same through evaluate(): 1000 fresh questions, every return 1.
  const auto ret = sl::rl::evaluate(
      "Search-v0",
      [&](const float* obs, std::int64_t n, std::int32_t* act) {
        for (std::int64_t i = 0; i < n; ++i) act[i] = scripted(obs + i * d, 5);
      },
      1000, 3);
  for (double r : ret) EXPECT_EQ(r, 1.0);
}

TEST(Search, WrongAnswersEarnZeroAndLookupsReturnTheFact) {
  EnvOptions o;
  o.num_envs = 8;
  o.group = 8;  // one question for all 8 copies
  o.auto_reset = false;
  Search env(o);
  const auto d = env.obs_dim();
  Buffers b(8, d);
  env.reset(5, b.obs.data());
  const auto q = env.question(0);
  for (int i = 1; i < 8; ++i) ASSERT_EQ(env.question_id(i), env.question_id(0));
  // Copy e answers entity e at once: only e = answer earns 1.
  for (int e = 0; e < 8; ++e) b.act[e] = Search::answer_action(e);
  step(env, b);
  for (int e = 0; e < 8; ++e) {
    EXPECT_TRUE(b.term[e]);
    EXPECT_FALSE(b.trunc[e]);
    EXPECT_EQ(b.rew[e], e == q.answer ? 1.f : 0.f) << e;
    EXPECT_EQ(env.calls(e), 0);
  }
  // Lookups: copy e looks up relation e % 3 of the start s and sees f_{e%3}(s), one call made; then
  // relation (e + 1) % 3 of that.
  for (int e = 0; e < 8; ++e) env.reset_env(e, b.obs.data() + e * d);
  ASSERT_EQ(env.question_id(3), env.question_id(0));  // the group's streams stay in step
  const auto q2 = env.question(0);
  for (int e = 0; e < 8; ++e) b.act[e] = Search::lookup_action(e % 3);
  step(env, b);
  for (int e = 0; e < 8; ++e) {
    EXPECT_FALSE(b.term[e] || b.trunc[e]);
    EXPECT_EQ(b.rew[e], 0.f);
    EXPECT_EQ(env.calls(e), 1);
    EXPECT_EQ(env.current(e), q2.fact(q2.start, e % 3));
    const float* ob = b.obs.data() + e * d;
    EXPECT_EQ(one_hot(ob + 25, 8), q2.fact(q2.start, e % 3));
    EXPECT_EQ(one_hot(ob + 20, 5), 1);
    EXPECT_EQ(one_hot(ob, 8), q2.start);
  }
  for (int e = 0; e < 8; ++e) b.act[e] = Search::lookup_action((e + 1) % 3);
  step(env, b);
  for (int e = 0; e < 8; ++e) {
    EXPECT_EQ(env.calls(e), 2);
    EXPECT_EQ(one_hot(b.obs.data() + e * d + 25, 8), q2.fact(q2.fact(q2.start, e % 3), (e + 1) % 3));
    EXPECT_EQ(one_hot(b.obs.data() + e * d + 20, 5), 2);
  }
}

TEST(Search, TheCallBudgetTruncatesAndRefusesTheLastLookup) {
  for (std::int64_t max_steps : {1, 3, 5}) {
    EnvOptions o;
    o.num_envs = 1;
    o.max_steps = max_steps;
    o.auto_reset = false;
    Search env(o);
    Buffers b(1, env.obs_dim());
    env.reset(9, b.obs.data());
    b.act[0] = Search::lookup_action(1);
    for (std::int64_t t = 1; t <= max_steps; ++t) {
      step(env, b);
      EXPECT_EQ(b.rew[0], 0.f);
      EXPECT_FALSE(b.term[0]);
      EXPECT_EQ(b.trunc[0] != 0, t == max_steps) << t;
      EXPECT_EQ(env.calls(0), std::min(t, max_steps - 1)) << t;
    }
    // The refused lookup is not counted as a call.
    EXPECT_EQ(env.calls(0), max_steps - 1);
    EXPECT_THROW(step(env, b), sl::UsageError);  // ended, no auto-reset
  }
  // Default budget 5 steps (4 calls).
  EXPECT_EQ(Search().max_steps(), 5);
}

TEST(Search, SeedingPerCopyPerGroupAndLevelSplits) {
  auto ids = [](EnvOptions o, std::uint64_t seed, int resets) {
    Search env(o);
    std::vector<float> obs(o.num_envs * env.obs_dim());
    env.reset(seed, obs.data());
    std::vector<std::vector<std::uint64_t>> out(o.num_envs);
    for (int r = 0; r < resets; ++r)
      for (std::int64_t i = 0; i < o.num_envs; ++i) {
        out[i].push_back(env.question_id(i));
        env.reset_env(i, obs.data() + i * env.obs_dim());
      }
    return out;
  };
  EnvOptions a;
  a.num_envs = 6;
  const auto x = ids(a, 4, 5), y = ids(a, 4, 5), z = ids(a, 5, 5);
  EXPECT_EQ(x, y);
  EXPECT_NE(x, z);
  a.num_envs = 2;
  const auto small = ids(a, 4, 5);
  EXPECT_EQ(small[0], x[0]);  // copy i starts the same whatever N is
  EXPECT_EQ(small[1], x[1]);
  EXPECT_NE(x[0], x[1]);
  // Groups of 3: copies 0-2 share the stream of group 0, 3-5 of group 1 (= copy 1's without groups).
  EnvOptions g;
  g.num_envs = 6;
  g.group = 3;
  const auto gx = ids(g, 4, 5);
  for (int i = 0; i < 3; ++i) EXPECT_EQ(gx[i], x[0]);
  for (int i = 3; i < 6; ++i) EXPECT_EQ(gx[i], x[1]);
  // Level split: ids in [start_level, start_level + levels).
  EnvOptions s;
  s.num_envs = 50;
  s.levels = 7;
  s.start_level = 100;
  std::set<std::uint64_t> seen;
  for (const auto& v : ids(s, 1, 4))
    for (auto id : v) {
      EXPECT_TRUE(id >= 100 && id < 107) << id;
      seen.insert(id);
    }
  EXPECT_EQ(seen.size(), 7u);
  // Auto-reset draws the next question of the copy's stream.
  EnvOptions r;
  r.num_envs = 1;
  Search env(r);
  Buffers b(1, env.obs_dim());
  env.reset(4, b.obs.data());
  b.act[0] = Search::answer_action(0);
  step(env, b);
  EXPECT_EQ(env.question_id(0), x[0][1]);
}

TEST(Search, BadInputIsAClearError) {
  Search env;
  Buffers b(1, env.obs_dim());
  EXPECT_THROW(step(env, b), sl::UsageError);  // before reset
  env.reset(1, b.obs.data());
  for (std::int32_t bad : {-1, 11, 1000}) {
    b.act[0] = bad;
    try {
      step(env, b);
      ADD_FAILURE() << bad;
    } catch (const sl::UsageError& e) {
      EXPECT_NE(std::string(e.what()).find("action of copy 0 is " + std::to_string(bad)), std::string::npos) << e.what();
    }
    EXPECT_EQ(env.calls(0), 0);  // nothing stepped
  }
  auto config_error = [](EnvOptions o, const char* key) {
    try {
      Search s(o);
      ADD_FAILURE() << key;
    } catch (const sl::ConfigError& e) {
      EXPECT_NE(std::string(e.what()).find(key), std::string::npos) << e.what();
    }
  };
  EnvOptions o;
  o.num_envs = 0;
  config_error(o, "env.num_envs");
  o = {};
  o.max_steps = 65;
  config_error(o, "env.max_steps");
  o = {};
  o.grid = 9;
  config_error(o, "env.grid");
  o = {};
  o.num_envs = 6;
  o.group = 4;
  config_error(o, "env.group");
  o = {};
  o.levels = -1;
  config_error(o, "env.levels");
  o = {};
  o.hub = -0.1;
  config_error(o, "env.hub");
  EnvOptions m;
  m.group = 2;
  EXPECT_THROW(sl::rl::make_env("Maze-v0", m), sl::ConfigError);
  EXPECT_THROW(sl::rl::make_env("CartPole-v1", m), sl::ConfigError);
  EnvOptions h;
  h.hub = 0.2;
  EXPECT_THROW(sl::rl::make_env("Maze-v0", h), sl::ConfigError);
  EXPECT_EQ(sl::rl::make_env("Search-v0", h)->name(), "Search-v0");
  EXPECT_EQ(sl::rl::make_env("Search-v0")->name(), "Search-v0");
  EXPECT_THROW(sl::rl::make_env("Serch-v0"), sl::UsageError);
}
