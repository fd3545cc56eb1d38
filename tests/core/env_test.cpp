#include <ATen/Parallel.h>
#include <gtest/gtest.h>

#include "stablelearn/core/env.h"

namespace sl = stablelearn;

TEST(Env, ApplyThreadsSetsLibtorchsIntraOpThreads) {
  EXPECT_EQ(sl::apply_threads(2), 2);
  EXPECT_EQ(at::get_num_threads(), 2);
  EXPECT_EQ(sl::runtime_info().threads, 2);
  EXPECT_EQ(sl::apply_threads(1), 1);
}

TEST(Env, RuntimeInfoNamesTheLoadedBlas) {
  const auto info = sl::runtime_info();
  EXPECT_EQ(info.stablelearn_version, sl::version());
  EXPECT_FALSE(info.torch_version.empty());
  // libtorch links libblas.so.3: some BLAS must be loaded in this process.
  EXPECT_NE(info.blas_library, "(none loaded)");
  EXPECT_NE(sl::runtime_info_text(info).find("BLAS"), std::string::npos);
  EXPECT_NE(sl::runtime_info_json(info).find("\"threads\""), std::string::npos);
}
