// experiments/repro: the registry, option resolution (--quick, --set, unknown keys) and checks.
// The entries themselves run end to end in tests/cli/repro_cli_test.cpp.
#include <filesystem>
#include <functional>
#include <set>

#include <gtest/gtest.h>

#include "stablelearn/core/config.h"
#include "stablelearn/core/error.h"
#include "stablelearn/core/progress.h"
#include "stablelearn/experiments/repro.h"
#include "testing.h"

namespace sl = stablelearn;
namespace ex = stablelearn::experiments;

TEST(Repro, TheRegistryHoldsTheMovedExperimentsEachWithPaperClaimAndOptions) {
  std::set<std::string> names;
  for (const auto& e : ex::repro_entries()) {
    names.insert(e.name);
    EXPECT_FALSE(e.paper.empty()) << e.name;
    EXPECT_FALSE(e.claim.empty()) << e.name;
    EXPECT_FALSE(e.options.empty()) << e.name;
    EXPECT_TRUE(e.run_seed && e.summarise) << e.name;
    for (const auto& o : e.options) {
      EXPECT_GT(o.value, 0) << e.name << "." << o.name;
      EXPECT_GT(o.quick, 0) << e.name << "." << o.name;
      EXPECT_LE(o.quick, o.value) << e.name << "." << o.name << ": --quick is never larger";
    }
  }
  EXPECT_EQ(names, (std::set<std::string>{"edge-of-stability", "sgd-minimum", "trajectory", "intrinsic-dim", "commutator",
                                          "stability-gap", "stability-gap-table", "lfd-forgetting", "stable-spam", "width-lr", "elr", "ska", "dppn", "bo-rep", "mip",
                                          "causal-minimax", "malignant-tail", "equivariance", "stableun", "koopman", "lfm-stability", "execution-manifolds",
                                           "gka", "generalization-dynamics", "cnn-kernel-curves", "hyper-pp", "drl-diagnosis", "drl-diagnosis-pixels", "stratified-grpo", "gd-sgd-minima", "grokalign", "rlvr-geometry", "relex", "shesha", "intrinsic-dim-sizes", "finetune-intrinsic-dim", "fscil", "care", "lcia", "coso", "sculpting-subspaces"}));
  sl::testing::expect_error<sl::UsageError>([] { ex::find_repro("edge-of-stabilty"); }, "known: edge-of-stability, sgd-minimum");
}

TEST(Repro, ResolvedConfigHasTheQuickValuesAndTheOverrides) {
  ex::ReproRequest r;
  r.name = "edge-of-stability";
  r.quick = true;
  r.seeds = 3;
  r.seed = 7;
  r.overrides = {"lr=0.25", "options.steps=200"};
  const auto cfg = sl::Config::from_string(ex::resolve_repro_config(r));
  const auto v = cfg.flat_values();
  EXPECT_EQ(v.at("repro.experiment"), "'edge-of-stability'");  // toml++ writes literal strings
  EXPECT_EQ(v.at("repro.quick"), "true");
  EXPECT_EQ(v.at("repro.seeds"), "3");
  EXPECT_EQ(v.at("repro.seed"), "7");
  EXPECT_EQ(v.at("options.lr"), "0.25");
  EXPECT_EQ(v.at("options.steps"), "200");
  EXPECT_EQ(v.at("options.every"), "50");  // the quick value
  r.quick = false;
  r.overrides.clear();
  EXPECT_EQ(sl::Config::from_string(ex::resolve_repro_config(r)).flat_values().at("options.steps"), "4000");
}

TEST(Repro, UnknownOrBadOptionsAreConfigErrorsNamingThem) {
  ex::ReproRequest r;
  r.name = "sgd-minimum";
  r.overrides = {"learning_rate=0.1"};
  sl::testing::expect_error<sl::ConfigError>([&] { ex::resolve_repro_config(r); }, "unknown key 'options.learning_rate'");
  sl::testing::expect_error<sl::ConfigError>([&] { ex::resolve_repro_config(r); }, "batch_size, epochs, hidden, lr, lr_factor");
  r.overrides = {"lr=-1"};
  sl::testing::expect_error<sl::ConfigError>([&] { ex::resolve_repro_config(r); }, "'lr' must be a positive number");
  r.overrides = {"epochs=1.5"};
  sl::testing::expect_error<sl::ConfigError>([&] { ex::resolve_repro_config(r); }, "epochs");
  r.overrides = {};
  r.seeds = 0;
  sl::testing::expect_error<sl::UsageError>([&] { ex::resolve_repro_config(r); }, "--seeds must be at least 1");
}

TEST(Repro, ChecksCompareValueAndThreshold) {
  EXPECT_TRUE(ex::make_check("a", 1.0, "<=", 1.0).pass);
  EXPECT_FALSE(ex::make_check("a", 1.0 + 1e-12, "<=", 1.0).pass);
  EXPECT_TRUE(ex::make_check("a", 2.0, ">=", 2.0).pass);
  EXPECT_FALSE(ex::make_check("a", 1.9, ">=", 2.0).pass);
  EXPECT_FALSE(ex::make_check("a", std::nan(""), "<=", 1.0).pass);  // NaN never passes
  EXPECT_FALSE(ex::make_check("a", std::nan(""), ">=", 1.0).pass);
  // Strict comparisons (a claim that one method is "above" another): equality fails them.
  EXPECT_FALSE(ex::make_check("a", 1.0, "<", 1.0).pass);
  EXPECT_TRUE(ex::make_check("a", 0.99, "<", 1.0).pass);
  EXPECT_FALSE(ex::make_check("a", 0.0, ">", 0.0).pass);
  EXPECT_TRUE(ex::make_check("a", 1e-9, ">", 0.0).pass);
  EXPECT_FALSE(ex::make_check("a", std::nan(""), ">", 0.0).pass);
  EXPECT_THROW(ex::make_check("a", 1.0, "==", 1.0), sl::InternalError);
}

TEST(Repro, SummaryTextShowsEveryCheckAndTheVerdict) {
  const nlohmann::json r{{"experiment", "x"},
                         {"paper", "P"},
                         {"claim", "C"},
                         {"checks", {{{"name", "first"}, {"value", 0.5}, {"comparison", "<="}, {"threshold", 1.0}, {"pass", true}},
                                     {{"name", "second"}, {"value", nullptr}, {"comparison", ">="}, {"threshold", 2.0}, {"pass", false}}}},
                         {"verdict", "not reproduced"}};
  const auto text = ex::repro_summary_text(r);
  EXPECT_NE(text.find("claim: C"), std::string::npos) << text;
  EXPECT_NE(text.find("first"), std::string::npos) << text;
  EXPECT_NE(text.find("nan"), std::string::npos) << text;
  EXPECT_NE(text.find("verdict: not reproduced (1/2 checks pass)"), std::string::npos) << text;
}

TEST(Repro, CausalMinimaxAndMalignantTailRejectBadOptionsNamingThem) {
  // The options' own checks run before any data is drawn or loaded: fewer than 2 training
  // environments, d above the width, a noise rate outside [0, 1).
  sl::ProgressReporter quiet(sl::ProgressReporter::Mode::Quiet);
  const auto dir = sl::testing::temp_dir("repro_bad_options");
  auto run = [&](const std::string& name, const std::string& set) {
    ex::ReproRequest r;
    r.name = name;
    r.quick = true;
    r.out = dir / (name + std::to_string(std::hash<std::string>{}(set)));
    r.overrides = {set};
    ex::run_repro(r, quiet);
  };
  sl::testing::expect_error<sl::ConfigError>([&] { run("causal-minimax", "train_environments=1"); },
                                             "train_environments = 1: expected at least 2");
  sl::testing::expect_error<sl::ConfigError>([&] { run("causal-minimax", "train_environments=20"); },
                                             "fewer than environments (20)");
  sl::testing::expect_error<sl::ConfigError>([&] { run("causal-minimax", "level=1.5"); }, "level = 1.5");
  sl::testing::expect_error<sl::ConfigError>([&] { run("malignant-tail", "probe_d=65"); }, "probe_d = 65: expected 1..64");
  sl::testing::expect_error<sl::ConfigError>([&] { run("malignant-tail", "noise=1"); }, "noise = 1: expected a rate in [0, 1)");
  std::filesystem::remove_all(dir);
}

TEST(Repro, FscilRejectsImpossibleShapesNamingTheKey) {
  // More shots than a new class has training images, more sessions than classes: ConfigErrors
  // naming the key, before any training.
  sl::ProgressReporter quiet(sl::ProgressReporter::Mode::Quiet);
  const auto dir = sl::testing::temp_dir("repro_fscil_bad");
  auto run = [&](const std::string& set) {
    ex::ReproRequest r;
    r.name = "fscil";
    r.quick = true;
    r.out = dir / std::to_string(std::hash<std::string>{}(set));
    r.overrides = {set};
    ex::run_repro(r, quiet);
  };
  sl::testing::expect_error<sl::ConfigError>([&] { run("shots=7000"); }, "fscil.shots = 7000 exceeds the 6000 training images of class 6");
  sl::testing::expect_error<sl::ConfigError>([&] { run("sessions=5"); }, "fscil.sessions = 5 (with fscil.ways = 1, fscil.base_classes = 6) needs 11 classes");
  std::filesystem::remove_all(dir);
}
