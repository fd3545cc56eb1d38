// core/run: run directories (fresh, refuse, resume, changed-config check, atomic writes, metrics
// rows cut by a kill, checkpoint manifest versions) and derive_seed.
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <set>
#include <thread>

#include <gtest/gtest.h>

#include "stablelearn/core/error.h"
#include "stablelearn/core/fs.h"
#include "stablelearn/core/run.h"
#include "testing.h"

namespace sl = stablelearn;
namespace fs = std::filesystem;
using nlohmann::json;

namespace {
const std::string kConfig = "[a]\nx = 1\ny = 2\n\n[b]\nz = \"q\"\n";
}

TEST(DeriveSeed, MatchesSplitMix64ComputedIndependently) {
  // Reference values from the documented formula evaluated with Python's integers (mod 2^64).
  EXPECT_EQ(sl::derive_seed(0, 0, 0), 7905728728188956330ull);
  EXPECT_EQ(sl::derive_seed(1, 0, 0), 6685036501382267578ull);
  EXPECT_EQ(sl::derive_seed(42, 3, 7), 748054661440552182ull);
  EXPECT_EQ(sl::derive_seed(-1, 2, 1), 5079922213999431138ull);
}

TEST(DeriveSeed, DistinctInputsGiveDistinctSeedsAndTheSameInputsTheSameSeed) {
  std::set<std::uint64_t> seen;
  for (std::int64_t s = 0; s < 12; ++s)
    for (std::int64_t t = 0; t < 12; ++t)
      for (std::int64_t p = 0; p < 12; ++p) {
        const auto v = sl::derive_seed(s, t, p);
        EXPECT_EQ(v, sl::derive_seed(s, t, p));
        EXPECT_LT(v, 1ull << 63);
        seen.insert(v);
      }
  EXPECT_EQ(seen.size(), 12u * 12u * 12u);  // no two (seed, task, purpose) share a stream
  // Permuting the arguments changes the seed (the mix is not symmetric).
  EXPECT_NE(sl::derive_seed(1, 2, 3), sl::derive_seed(3, 2, 1));
  EXPECT_NE(sl::derive_seed(1, 2, 3), sl::derive_seed(2, 1, 3));
}

TEST(RunDir, FreshRunWritesTheConfigAndRemovesStaleMetrics) {
  const auto dir = sl::testing::temp_dir("rundir_fresh") / "run";
  const auto run = sl::RunDir::open(dir, kConfig);
  EXPECT_FALSE(run.resumed());
  EXPECT_EQ(sl::read_file_text(dir / "config.toml"), kConfig);
  EXPECT_TRUE(run.read_metrics().empty());
  // --resume of a folder that holds no run starts fresh.
  const auto empty = sl::testing::temp_dir("rundir_empty");
  EXPECT_FALSE(sl::RunDir::open(empty, kConfig, sl::RunDirOptions().resume(true)).resumed());
  fs::remove_all(dir.parent_path());
  fs::remove_all(empty);
}

TEST(RunDir, RefusesANonEmptyFolderWithoutResume) {
  const auto dir = sl::testing::temp_dir("rundir_refuse");
  sl::write_file_atomic(dir / "notes.txt", "someone's files");
  sl::testing::expect_error<sl::UsageError>([&] { sl::RunDir::open(dir, kConfig); }, "use --resume to continue it");
  EXPECT_EQ(sl::read_file_text(dir / "notes.txt"), "someone's files");
  EXPECT_FALSE(fs::exists(dir / "config.toml"));
  // With a marker file (lfd train, cl run) only the marker means "holds a run".
  EXPECT_FALSE(sl::RunDir::open(dir, kConfig, sl::RunDirOptions().marker("checkpoint.json")).resumed());
  sl::write_file_atomic(dir / "checkpoint.json", "{}");
  sl::testing::expect_error<sl::UsageError>([&] { sl::RunDir::open(dir, kConfig, sl::RunDirOptions().marker("checkpoint.json")); },
                                            "checkpoint.json");
  fs::remove_all(dir);
}

TEST(RunDir, ResumeKeepsTheMetricsOfTheRun) {
  const auto dir = sl::testing::temp_dir("rundir_resume");
  {
    const auto run = sl::RunDir::open(dir, kConfig);
    run.append_metrics({{"step", 1}, {"loss", 0.5}});
    run.append_metrics({{"step", 2}, {"loss", 0.25}});
  }
  const auto run = sl::RunDir::open(dir, kConfig, sl::RunDirOptions().resume(true));
  EXPECT_TRUE(run.resumed());
  const auto rows = run.read_metrics();
  ASSERT_EQ(rows.size(), 2u);
  EXPECT_EQ(rows[1].at("loss").get<double>(), 0.25);
  EXPECT_EQ(sl::read_file_text(dir / "metrics.jsonl"), "{\"loss\":0.5,\"step\":1}\n{\"loss\":0.25,\"step\":2}\n");
  const auto kept = run.keep_metrics([](const json& r) { return r.at("step").get<int>() == 2; });
  ASSERT_EQ(kept.size(), 1u);
  EXPECT_EQ(sl::read_file_text(dir / "metrics.jsonl"), "{\"loss\":0.25,\"step\":2}\n");
  fs::remove_all(dir);
}

TEST(RunDir, ChangedConfigOnResumeNamesEveryDifferingKey) {
  const auto dir = sl::testing::temp_dir("rundir_changed");
  sl::RunDir::open(dir, kConfig);
  const std::string changed = "[a]\nx = 1\ny = 3\n\n[b]\nw = true\n";
  try {
    sl::RunDir::open(dir, changed, sl::RunDirOptions().resume(true));
    FAIL() << "expected a ConfigError";
  } catch (const sl::ConfigError& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find("a.y = 2 in the run, 3 now"), std::string::npos) << m;
    EXPECT_NE(m.find("b.z = 'q' in the run, (absent) now"), std::string::npos) << m;
    EXPECT_NE(m.find("b.w = (absent) in the run, true now"), std::string::npos) << m;
    EXPECT_EQ(m.find("a.x"), std::string::npos) << m;  // equal keys are not named
  }
  EXPECT_EQ(sl::read_file_text(dir / "config.toml"), kConfig);  // untouched
  fs::remove_all(dir);
}

TEST(RunDir, AStoredConfigThatResolvesToTheCurrentOneIsUpgradedOnResume) {
  const auto dir = sl::testing::temp_dir("rundir_upgrade");
  const std::string old_form = "[a]\nx = 1\n";  // written before a.y and [b] existed
  sl::write_file_atomic(dir / "config.toml", old_form);
  const auto reresolve = [](const std::string& stored) { return stored == "[a]\nx = 1\n" ? kConfig : stored; };
  const auto run = sl::RunDir::open(dir, kConfig, sl::RunDirOptions().resume(true).reresolve(reresolve));
  EXPECT_TRUE(run.resumed());
  EXPECT_EQ(sl::read_file_text(dir / "config.toml"), kConfig);
  fs::remove_all(dir);
}

TEST(RunDir, APartialLastMetricsRowIsDroppedOnResume) {
  const auto dir = sl::testing::temp_dir("rundir_partial");
  sl::RunDir::open(dir, kConfig);
  sl::write_file_atomic(dir / "metrics.jsonl", "{\"step\":1}\n{\"step\":2}\n{\"step\":3,\"lo");  // killed mid-append
  const auto run = sl::RunDir::open(dir, kConfig, sl::RunDirOptions().resume(true));
  EXPECT_EQ(sl::read_file_text(dir / "metrics.jsonl"), "{\"step\":1}\n{\"step\":2}\n");
  run.append_metrics({{"step", 3}});
  const auto rows = run.read_metrics();
  ASSERT_EQ(rows.size(), 3u);
  EXPECT_EQ(rows[2].at("step").get<int>(), 3);
  // A malformed complete row is a DataError naming the file and line.
  sl::write_file_atomic(dir / "metrics.jsonl", "{\"step\":1}\nnot json\n");
  sl::testing::expect_error<sl::DataError>([&] { run.read_metrics(); }, "metrics.jsonl:2");
  // A torn last row that an older writer terminated with a newline is dropped on resume too; a
  // malformed row before it is not touched (read_metrics reports it).
  sl::write_file_atomic(dir / "metrics.jsonl", "{\"step\":1}\n{\"step\":2,\"lo\n");
  sl::RunDir::open(dir, kConfig, sl::RunDirOptions().resume(true));
  EXPECT_EQ(sl::read_file_text(dir / "metrics.jsonl"), "{\"step\":1}\n");
  sl::write_file_atomic(dir / "metrics.jsonl", "bad\n{\"step\":2}\n");
  sl::RunDir::open(dir, kConfig, sl::RunDirOptions().resume(true));
  EXPECT_EQ(sl::read_file_text(dir / "metrics.jsonl"), "bad\n{\"step\":2}\n");
  fs::remove_all(dir);
}

TEST(RunDir, AtomicWritesKilledAtAnyMomentLeaveTheOldOrTheNewFile) {
  const auto dir = sl::testing::temp_dir("rundir_kill");
  const auto path = dir / "summary.json";
  const std::string a(4 << 20, 'a'), b(4 << 20, 'b');
  sl::write_file_atomic(path, a);
  for (int round = 0; round < 12; ++round) {
    const pid_t pid = fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      for (int i = 0;; ++i) sl::write_file_atomic(path, i % 2 ? a : b);  // until killed
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(3 + 7 * round));
    kill(pid, SIGKILL);
    int status = 0;
    waitpid(pid, &status, 0);
    const auto text = sl::read_file_text(path);
    ASSERT_TRUE(text == a || text == b) << "round " << round << ": a torn file of " << text.size() << " bytes";
  }
  fs::remove_all(dir);
}

TEST(RunDir, SummaryCarriesTheRuntimeBlock) {
  const auto dir = sl::testing::temp_dir("rundir_summary");
  const auto run = sl::RunDir::open(dir, kConfig);
  run.write_summary({{"seed", 3}, {"seconds", 1.5}});
  const auto s = json::parse(sl::read_file_text(dir / "summary.json"));
  EXPECT_EQ(s.at("seed").get<int>(), 3);
  EXPECT_GE(s.at("runtime").at("threads").get<int>(), 1);
  EXPECT_FALSE(s.at("runtime").at("torch").get<std::string>().empty());
  fs::remove_all(dir);
}

TEST(CheckpointManifest, RoundTripsAndRefusesNewerVersionsAndOtherFormats) {
  const auto dir = sl::testing::temp_dir("manifest");
  const auto run = sl::RunDir::open(dir, kConfig);
  sl::CheckpointManifest m;
  m.format = "stablelearn-test-checkpoint";
  m.version = 2;
  m.fields = {{"completed_tasks", 3}, {"file", "checkpoint_task2.npz"}};
  run.write_manifest(m);
  const auto back = run.read_manifest("stablelearn-test-checkpoint", 2);
  EXPECT_EQ(back.version, 2);
  EXPECT_EQ(back.fields.at("completed_tasks").get<int>(), 3);
  EXPECT_EQ(back.fields.at("file").get<std::string>(), "checkpoint_task2.npz");
  EXPECT_FALSE(back.fields.contains("format"));
  sl::testing::expect_error<sl::DataError>([&] { run.read_manifest("stablelearn-test-checkpoint", 1); },
                                           "format version 2 was written by a newer stablelearn; this build reads versions 1..1");
  sl::testing::expect_error<sl::DataError>([&] { run.read_manifest("stablelearn-other-checkpoint", 5); },
                                           "not a stablelearn stablelearn-other-checkpoint file");
  sl::write_file_atomic(dir / "checkpoint.json", "{\"format\": \"stablelearn-test-checkpoint\", \"version\": 0}");
  sl::testing::expect_error<sl::DataError>([&] { run.read_manifest("stablelearn-test-checkpoint", 2); }, "version 0 is not valid");
  // 2^32 + 1 would wrap to 1 as an int (and be taken for version 1); negative and huge values too.
  for (const char* v : {"4294967297", "-4294967295", "18446744073709551617", "1e3", "1.0"}) {
    sl::write_file_atomic(dir / "checkpoint.json", std::string("{\"format\": \"stablelearn-test-checkpoint\", \"version\": ") + v + "}");
    EXPECT_THROW(run.read_manifest("stablelearn-test-checkpoint", 2), sl::DataError) << v;
  }
  sl::write_file_atomic(dir / "checkpoint.json", "{\"format\": \"stablelearn-test");
  sl::testing::expect_error<sl::DataError>([&] { run.read_manifest("stablelearn-test-checkpoint", 2); }, "corrupt checkpoint");
  fs::remove(dir / "checkpoint.json");
  sl::testing::expect_error<sl::IoError>([&] { run.read_manifest("stablelearn-test-checkpoint", 2); }, "no checkpoint");
  fs::remove_all(dir);
}
