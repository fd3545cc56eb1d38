// The precompiled header shared by every target that uses libtorch (shared/STYLE.md #12).
// Only the narrow libtorch headers the project needs; never torch/torch.h.
#pragma once

#include <torch/types.h>
#include <torch/nn/module.h>
#include <torch/nn/modules/linear.h>
#include <torch/optim/adam.h>
#include <torch/autograd.h>

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>
