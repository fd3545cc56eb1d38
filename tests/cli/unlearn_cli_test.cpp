// End-to-end tests of `stablelearn unlearn` on a tiny one-task `cl run` (all ten classes of the
// synthetic IDX set of cli_run_testing.h, MLP 784-16-8-10): each method forgets the class and
// keeps the others, results.json's numbers recomputed from its own parts and from the written
// weights, the run directory's files, and the errors (a class out of range, a run that does not
// match its data, missing or conflicting options).
#include <cmath>
#include <fstream>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include "cli_run_testing.h"
#include "cli_testing.h"
#include "stablelearn/core/config.h"
#include "stablelearn/core/fs.h"
#include "stablelearn/data/tensor_convert.h"
#include "stablelearn/experiments/cl_experiment.h"
#include "stablelearn/io/npz.h"
#include "testing.h"

namespace sl = stablelearn;
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

class UnlearnCli : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    at::set_num_threads(sl::testing::test_threads());
    dir_ = new fs::path(sl::testing::temp_dir("unlearn_cli"));
    const auto data = sl::testing::write_tiny_fmnist(*dir_);
    std::ofstream(*dir_ / "one.toml") << "[stream]\nkind = \"permuted\"\ntasks = 1\ndata_dir = \"" + data.string() +
                                             "\"\n[model]\nhidden = [16, 8]\n[strategy]\nname = \"finetune\"\n[train]\n"
                                             "epochs = 6\nbatch_size = 16\nlr = 0.05\nseed = 0\n[output]\ntensorboard = false\n"
                                             "figures = false\n";
    const auto r = sl::testing::run_cli("cl run " + (*dir_ / "one.toml").string() + " --out " + (*dir_ / "one").string());
    ASSERT_EQ(r.status, 0) << r.err;
  }
  static void TearDownTestSuite() {
    fs::remove_all(*dir_);
    delete dir_;
  }
  static std::string run() { return (*dir_ / "one").string(); }
  static fs::path* dir_;
};

fs::path* UnlearnCli::dir_ = nullptr;

json read_json(const fs::path& p) { return json::parse(sl::read_file_text(p)); }

}  // namespace

TEST_F(UnlearnCli, EachMethodForgetsTheClassAndKeepsTheOthers) {
  for (const char* method : {"ga", "npo", "stableun"}) {
    const auto out = *dir_ / (std::string("u_") + method);
    const auto r = sl::testing::run_cli("unlearn --run " + run() + " --out " + out.string() + " --forget-class 3 --method " +
                                        method + " --steps 300 --lr 0.01 --batch 32 --beta 0.5 --stop-forget-acc 0 --attack-steps 10 "
                                        "--lanczos-steps 8 "
                                        "--probe-samples 40 --quiet");
    ASSERT_EQ(r.status, 0) << method << ": " << r.err;
    const auto res = read_json(out / "results.json");
    EXPECT_GT(res.at("before").at("forget_acc").get<double>(), 0.8) << method << ": the run knows class 3";
    EXPECT_LE(res.at("after").at("forget_acc").get<double>(), 0.1) << method << ": class 3 is forgotten";
    EXPECT_GE(res.at("after").at("retain_acc").get<double>(), res.at("before").at("retain_acc").get<double>() - 0.1)
        << method << ": the other classes are kept";
    EXPECT_NEAR(res.at("retain_drop").get<double>(),
                res.at("before").at("retain_acc").get<double>() - res.at("after").at("retain_acc").get<double>(), 1e-12);
    EXPECT_EQ(res.at("forget_samples").get<int>(), 40);
    EXPECT_EQ(res.at("retain_samples").get<int>(), 360);
    const int steps = res.at("steps").get<int>();
    EXPECT_EQ(res.at("passes").get<int>(), (std::string(method) == "stableun" ? 3 : 2) * steps);
    EXPECT_EQ(res.at("stopped_early").get<bool>(), steps < 300);
    EXPECT_TRUE(steps == 300 || (steps % 5 == 0 && res.at("after").at("forget_train_acc").get<double>() == 0)) << steps;
    const auto a = res.at("relearn").at("accuracy").get<std::vector<double>>();
    ASSERT_EQ(a.size(), 11u);
    EXPECT_NEAR(a[0], res.at("after").at("forget_acc").get<double>(), 1e-12);
    double area = 0;
    for (std::size_t i = 0; i < 10; ++i) area += (a[i] + a[i + 1]) / 2;
    EXPECT_NEAR(res.at("relearn").at("auc").get<double>(), area / 10, 1e-12);
    // The written weights give the reported forget accuracy on class 3's test images (20 of them).
    const auto view = sl::experiments::load_cl_run(run());
    const auto npz = sl::io::read_npz(out / "weights.npz");
    std::vector<torch::Tensor> w;
    for (std::size_t i = 0; i < view.model->weights().size(); ++i)
      w.push_back(sl::data::to_tensor(npz.at("model." + std::to_string(i))));
    const auto& test = view.tasks[0].test;
    const auto mask = test.labels.eq(3);
    torch::NoGradGuard ng;
    const double acc = view.model->forward(test.images.index({mask}), w).argmax(1).eq(3).to(torch::kFloat64).mean().item<double>();
    EXPECT_NEAR(acc, res.at("after").at("forget_acc").get<double>(), 1e-12) << method;
    // The run directory: resolved config, metrics every 10 steps, summary with seed and versions.
    const auto cfg = sl::Config::from_file(out / "config.toml").flat_values();
    EXPECT_EQ(cfg.at("unlearn.method"), "'" + std::string(method) + "'");
    EXPECT_EQ(cfg.at("unlearn.forget_class"), "3");
    ASSERT_GT(steps, 0) << method;
    EXPECT_EQ(sl::read_lines(out / "metrics.jsonl").size(), static_cast<std::size_t>((steps + 9) / 10));  // every 10th and the last
    const auto s = read_json(out / "summary.json");
    EXPECT_TRUE(s.contains("runtime"));
    EXPECT_EQ(s.at("seed").get<int>(), 0);
  }
}

TEST_F(UnlearnCli, ARandomForgetSetIsMeasuredOnItself) {
  const auto out = *dir_ / "random";
  const auto r = sl::testing::run_cli("unlearn --run " + run() + " --out " + out.string() +
                                      " --forget-random 25 --method ga --steps 5 --attack-steps 2 --lanczos-steps 4 --quiet");
  ASSERT_EQ(r.status, 0) << r.err;
  const auto res = read_json(out / "results.json");
  EXPECT_EQ(res.at("forget_samples").get<int>(), 25);
  EXPECT_EQ(res.at("retain_samples").get<int>(), 375);
  EXPECT_EQ(res.at("after").at("forget_acc").get<double>(), res.at("after").at("forget_train_acc").get<double>());
}

TEST_F(UnlearnCli, BadInputIsAClearErrorWithExitStatusTwo) {
  const auto out = (*dir_ / "bad").string();
  const auto base = "unlearn --run " + run() + " --out " + out;
  sl::testing::expect_usage_error(base + " --forget-class 10", "--forget-class 10 is out of range: the model has 10 classes (0..9)");
  sl::testing::expect_usage_error(base, "give exactly one of --forget-class C");
  sl::testing::expect_usage_error(base + " --forget-class 1 --forget-random 5", "give exactly one of --forget-class C");
  sl::testing::expect_usage_error(base + " --forget-class 1 --method sam", "method = 'sam': expected one of ga, npo, stableun");
  sl::testing::expect_usage_error(base + " --forget-class 1 --rho -1", "rho = -1");
  sl::testing::expect_usage_error(base + " --forget-random 400", "--forget-random 400: the run has 400 training images");
  sl::testing::expect_usage_error("unlearn --run " + (*dir_ / "nope").string() + " --out " + out + " --forget-class 1", "nope");
  // A run whose model does not match its checkpoint (the config's hidden widths changed).
  const auto bad = *dir_ / "mismatch";
  fs::create_directories(bad);
  for (const auto& e : fs::directory_iterator(*dir_ / "one")) fs::copy(e.path(), bad / e.path().filename(), fs::copy_options::recursive);
  auto text = sl::read_file_text(bad / "config.toml");
  const auto p = text.find("16, 8");
  ASSERT_NE(p, std::string::npos) << text;
  text.replace(p, 5, "16, 9");
  std::ofstream(bad / "config.toml") << text;
  const auto r = sl::testing::run_cli("unlearn --run " + bad.string() + " --out " + out + " --forget-class 1");
  EXPECT_EQ(r.status, 2) << r.err;
  EXPECT_NE(r.err.find("checkpoint"), std::string::npos) << r.err;
  EXPECT_FALSE(fs::exists(out)) << "nothing is written on bad input";
}
