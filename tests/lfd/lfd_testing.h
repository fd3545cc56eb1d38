// Shared set-up of the LfD training test suites.
#pragma once

#include <cstdint>

#include "stablelearn/lfd/trainer.h"
#include "testing.h"

namespace stablelearn::testing {

/// A tiny CHN -> sNODE configuration on the shipped LASA data: f̂ width 16, ICNN 8, 2 f̂ layers,
/// hypernetwork 16, embeddings 8, chunks of 256, lr 1e-3, a log line every 5 iterations.
inline lfd::LfdConfig tiny_lfd_config(std::int64_t tasks, std::int64_t iterations, double beta) {
  lfd::LfdConfig c;
  c.root = project_data().string();
  c.tasks = tasks;
  c.h = 16;
  c.hp = 8;
  c.fhat_layers = 2;
  c.hnet_hidden = {16};
  c.task_emb_dim = 8;
  c.chunk_emb_dim = 8;
  c.chunk_dim = 256;
  c.iterations = iterations;
  c.lr = 1e-3;
  c.beta = beta;
  c.log_every = 5;
  return c;
}

}  // namespace stablelearn::testing
