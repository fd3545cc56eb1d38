// Search-v0: a verifiable-reward "search" environment (issue 23; the toy search agent of Stratified
// GRPO, shared/specs/papers-19-35.md §28), torch-free. An agent answers multi-hop questions over a
// small knowledge base it can only read through a lookup tool, calling it a variable number of
// times.
//
// Question `id` (≥ 0) is a function of its id alone, drawn from its own splitmix64 stream:
//   * a knowledge base of `entities` (8) entities and `relations` (3) relations: one fact
//     f_r(e) per (entity, relation), uniform over the 8 entities; with EnvOptions.hub = h > 0 the
//     "popular" entity 0 with probability h, else uniform (so a guess of entity 0 is right with
//     probability h + (1 − h)/8: a prior a no-search answer can exploit, as a language model's
//     parametric guess; default h = 0, no such prior);
//   * a start entity s (uniform), a number of hops k uniform in {1, …, max_hops} (3) and a relation
//     path r_1 … r_k (uniform);
//   * the answer x_k, where x_0 = s and x_j = f_{r_j}(x_{j−1}): k lookups along the path find it.
//
// Actions (num_actions = relations + entities = 11):
//   a < 3         lookup(r = a): the tool is called with the key (current entity x, relation r)
//                 and returns f_r(x), which becomes the observation's "current entity" (x = s
//                 before any call); reward 0; counts as one tool call
//   a ≥ 3         answer(e = a − 3): the episode terminates with reward 1 if e is the answer, 0
//                 otherwise
// Truncation: an episode that has not answered after max_steps steps (default 5) ends with reward 0;
// the lookup of that last step is refused (the call budget, max_steps − 1 calls, is spent). So the
// number of tool calls of every episode is its length minus one (the stratum of Stratified GRPO).
//
// Observation (entities + max_hops · relations + max_hops + max_steps + entities = 33 floats at the
// defaults), all one-hot blocks:
//   [0, 8)    the start entity s
//   [8, 17)   the relation path, slot j (3 floats) one-hot r_{j+1} for j < k, zeros after
//   [17, 20)  k (one-hot k − 1)
//   [20, 25)  the number of calls made so far (0 … max_steps − 1)
//   [25, 33)  the current entity: the result of the last lookup, s before any
// so the optimal policy reads: calls c < k → lookup(r_{c+1}); c = k → answer(current).
//
// Seeding (rl/env.h): reset(seed) seeds copy i's stream from (seed, i / group); each reset of a copy
// (reset, reset_env, auto-reset) draws the next question id from it: start_level + u mod levels
// (levels > 0, a split of question ids) or start_level + u mod 2³¹ (levels = 0). With group = G the
// copies [gG, (g + 1)G) share one stream, so their j-th episodes are the same question: GRPO's
// groups of G trajectories per question (reset(seed) with a fresh seed per iteration gives every
// group a new question in step).
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "stablelearn/rl/env.h"

namespace stablelearn::rl {

/// One generated question.
struct SearchQuestion {
  static constexpr std::int32_t entities = 8, relations = 3, max_hops = 3;
  std::array<std::int32_t, entities * relations> facts{};  ///< f_r(e) at e · relations + r
  std::int32_t start = 0, hops = 1;
  std::array<std::int32_t, max_hops> path{};  ///< r_1 … r_k (entries past k are 0)
  std::int32_t answer = 0;
  std::int32_t fact(std::int32_t e, std::int32_t r) const { return facts[static_cast<std::size_t>(e * relations + r)]; }
};

/// Question `id` with hub probability `hub` (see above; ConfigError naming env.hub outside [0, 1]).
SearchQuestion search_question(std::uint64_t id, double hub = 0);

class Search final : public VecEnv {
 public:
  static constexpr std::int32_t entities = SearchQuestion::entities, relations = SearchQuestion::relations,
                                max_hops = SearchQuestion::max_hops;
  static constexpr std::int64_t default_max_steps = 5;
  static constexpr std::int32_t num_lookups = relations;
  /// ConfigError naming the option for num_envs < 1, max_steps outside [0, 64] (0 = 5), levels or
  /// start_level < 0, grid ≠ 0, group < 1 or a group that does not divide num_envs, hub outside [0, 1].
  explicit Search(const EnvOptions& options = {});

  const std::string& name() const override { return name_; }
  std::int64_t num_envs() const override { return n_; }
  std::int64_t obs_dim() const override { return 2 * entities + max_hops * relations + max_hops + max_steps_; }
  std::int64_t num_actions() const override { return num_lookups + entities; }
  void reset(std::uint64_t seed, float* obs) override;
  void reset_env(std::int64_t i, float* obs_i) override;
  void step(const std::int32_t* actions, float* obs, float* reward, std::uint8_t* terminated,
            std::uint8_t* truncated, float* final_obs = nullptr) override;

  std::int64_t max_steps() const { return max_steps_; }
  std::int64_t group() const { return group_; }
  double hub() const { return hub_; }
  /// Copy i's current question, its id, the tool calls of its current episode and its current entity.
  const SearchQuestion& question(std::int64_t i) const { return q_[check_index(i)]; }
  std::uint64_t question_id(std::int64_t i) const { return qid_[check_index(i)]; }
  std::int64_t calls(std::int64_t i) const { return calls_[check_index(i)]; }
  std::int32_t current(std::int64_t i) const { return cur_[check_index(i)]; }

  /// Action ids.
  static std::int32_t lookup_action(std::int32_t relation) { return relation; }
  static std::int32_t answer_action(std::int32_t entity) { return num_lookups + entity; }

 private:
  std::int64_t check_index(std::int64_t i) const;
  void reset_one(std::int64_t i);
  void write_obs(std::int64_t i, float* obs_i) const;
  std::string name_ = "Search-v0";
  std::int64_t n_, max_steps_, levels_, start_level_, group_;
  double hub_;
  bool auto_reset_;
  std::vector<SearchQuestion> q_;
  std::vector<std::uint64_t> qid_;
  std::vector<std::int32_t> cur_, calls_;
  std::vector<std::uint8_t> ended_;
  std::vector<SplitMix64> rng_;
  bool started_ = false;
};

}  // namespace stablelearn::rl
