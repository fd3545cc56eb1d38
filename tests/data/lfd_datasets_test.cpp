#include <gtest/gtest.h>

#include "stablelearn/core/error.h"
#include "stablelearn/core/fs.h"
#include "stablelearn/data/lfd_datasets.h"
#include "stablelearn/data/tensor_convert.h"
#include "stablelearn/io/npy.h"
#include "stablelearn/io/npz.h"
#include "testing.h"

namespace sl = stablelearn;
namespace fs = std::filesystem;
using sl::data::LfdDataset;
using sl::data::LfdDatasetKind;

TEST(LfdDatasets, EveryShippedDataSetHasItsTasksAndShapes) {
  struct Expect {
    LfdDatasetKind kind;
    std::int64_t tasks, demos, dim;
  };
  for (const auto& e : {Expect{LfdDatasetKind::Lasa2D, 26, 7, 2}, Expect{LfdDatasetKind::Lasa8D, 10, 7, 8},
                        Expect{LfdDatasetKind::Lasa16D, 10, 7, 16}, Expect{LfdDatasetKind::Lasa32D, 10, 7, 32},
                        Expect{LfdDatasetKind::HelloWorld, 7, 8, 2}, Expect{LfdDatasetKind::RoboTasks9, 9, 9, 7}}) {
    LfdDataset ds(e.kind, sl::testing::project_data());
    SCOPED_TRACE(ds.spec().name);
    ASSERT_EQ(ds.num_tasks(), e.tasks);
    for (std::int64_t i = 0; i < ds.num_tasks(); i += std::max<std::int64_t>(1, ds.num_tasks() - 1)) {
      const auto task = ds.task(i);
      EXPECT_EQ(task.pos.sizes().vec(), (std::vector<std::int64_t>{e.demos, 1000, e.dim}));
      EXPECT_EQ(task.t.sizes().vec(), (std::vector<std::int64_t>{e.demos, 1000}));
      EXPECT_EQ(task.pos.scalar_type(), torch::kFloat64);
      EXPECT_EQ(task.t[0][0].item<double>(), 0.0);
    }
  }
}

TEST(LfdDatasets, TaskOrderFollowsTheSequenceFiles) {
  LfdDataset lasa(LfdDatasetKind::Lasa2D, sl::testing::project_data());
  EXPECT_EQ(lasa.task_files().front(), "task_x0_y0.npz");
  EXPECT_EQ(lasa.task_files().back(), "task_x25_y25.npz");
  LfdDataset hello(LfdDatasetKind::HelloWorld, sl::testing::project_data());
  EXPECT_EQ(hello.task_files(), (std::vector<std::string>{"h.npy", "e.npy", "l.npy", "o.npy", "w.npy", "r.npy", "d.npy"}));
  LfdDataset hello3(LfdDatasetKind::HelloWorld, sl::testing::project_data(), "robot_hello_world/helloworld_sequence_3.txt");
  EXPECT_EQ(hello3.num_tasks(), 4);  // w, r, d, o: four lines despite the name (spec §1.4)
  LfdDataset robo(LfdDatasetKind::RoboTasks9, sl::testing::project_data());
  EXPECT_EQ(robo.task_files().front(), "openbox.npy");
  EXPECT_EQ(robo.task_files().back(), "wineglass.npy");
}

TEST(LfdDatasets, LasaAngleStatisticsMatchTheSpec) {
  // Spec §1.2: task 0 (Angle) mean over all 7x1000 points = (-21.075751, 19.735880),
  // population std = (15.022744, 13.635629); every LASA demonstration ends at (0, 0).
  const auto task = LfdDataset(LfdDatasetKind::Lasa2D, sl::testing::project_data()).task(0);
  const auto flat = task.pos.reshape({-1, 2});
  EXPECT_NEAR(flat.mean(0)[0].item<double>(), -21.075751, 1e-6);
  EXPECT_NEAR(flat.mean(0)[1].item<double>(), 19.735880, 1e-6);
  EXPECT_NEAR(flat.std(0, false)[0].item<double>(), 15.022744, 1e-6);
  EXPECT_NEAR(flat.std(0, false)[1].item<double>(), 13.635629, 1e-6);
  EXPECT_EQ(task.pos.select(1, 999).abs().max().item<double>(), 0.0);
  // Angle demo 0: t_end = 2.4515 s, uniform steps dt = t_end / 999 (spec §1.2).
  EXPECT_NEAR(task.t[0][999].item<double>(), 2.4515, 5e-5);
  EXPECT_NEAR((task.t[0][1] - task.t[0][0]).item<double>(), 2.4515 / 999, 1e-7);
}

TEST(LfdDatasets, HelloWorldAndRoboTasksUseTheSixtyHertzClock) {
  // t = linspace(0, 1000, 1000) / 60: step 1000/999/60, not 1/60 (spec §1.4).
  const auto hello = LfdDataset(LfdDatasetKind::HelloWorld, sl::testing::project_data()).task(0);
  EXPECT_NEAR((hello.t[3][1] - hello.t[3][0]).item<double>(), 1000.0 / 999.0 / 60.0, 1e-15);
  EXPECT_NEAR(hello.t[0][999].item<double>(), 1000.0 / 60.0, 1e-12);
  const auto robo = LfdDataset(LfdDatasetKind::RoboTasks9, sl::testing::project_data()).task(0);
  EXPECT_NEAR(robo.t[8][999].item<double>(), 1000.0 / 60.0, 1e-12);
  // All 9 demonstrations of a RoboTasks9 task end at exactly the same position (spec §1.5).
  const auto ends = robo.pos.select(1, 999).narrow(1, 0, 3);
  EXPECT_EQ((ends - ends[0]).abs().max().item<double>(), 0.0);
}

namespace {

/// The original high-dimensional npz files in shared/data (not shipped with the project).
void expect_highdim_equals_original(LfdDatasetKind kind, const std::string& folder) {
  const auto original_dir = sl::testing::shared_data() / "LASA" / folder;
  ASSERT_TRUE(fs::is_directory(original_dir)) << original_dir << " is missing: the shared/ folder must sit beside the checkout";
  LfdDataset ds(kind, sl::testing::project_data());
  ASSERT_EQ(ds.num_tasks(), 10);
  for (std::int64_t i = 0; i < ds.num_tasks(); ++i) {
    const auto built = ds.task(i);
    const auto original = sl::io::read_npz(original_dir / built.name);
    const auto pos = sl::data::to_tensor(original.at("pos"));
    const auto t = sl::data::to_tensor(original.at("t"));
    ASSERT_EQ(built.pos.sizes(), pos.sizes()) << built.name;
    EXPECT_EQ((built.pos - pos).abs().max().item<double>(), 0.0) << built.name;
    EXPECT_EQ((built.t - t).abs().max().item<double>(), 0.0) << built.name;
  }
}

}  // namespace

TEST(LfdDatasets, Lasa8DBuiltFrom2DEqualsTheOriginalFilesExactly) {
  expect_highdim_equals_original(LfdDatasetKind::Lasa8D, "lasa_numpy_8D");
}
TEST(LfdDatasets, Lasa16DBuiltFrom2DEqualsTheOriginalFilesExactly) {
  expect_highdim_equals_original(LfdDatasetKind::Lasa16D, "lasa_numpy_16D");
}
TEST(LfdDatasets, Lasa32DBuiltFrom2DEqualsTheOriginalFilesExactly) {
  expect_highdim_equals_original(LfdDatasetKind::Lasa32D, "lasa_numpy_32D");
}

TEST(LfdDatasets, SharedRootWithoutEightDMetadataParsesTheFileNames) {
  // shared/data has no LASA/lasa_numpy_8D/metadata.json: names task_a_b_c_d.npz give the shapes.
  LfdDataset ds(LfdDatasetKind::Lasa8D, sl::testing::shared_data());
  const auto task = ds.task(1);  // task_10_11_12_13.npz
  const auto shape12 = LfdDataset(LfdDatasetKind::Lasa2D, sl::testing::project_data()).task(12);
  EXPECT_EQ(task.name, "task_10_11_12_13.npz");
  EXPECT_TRUE(torch::equal(task.pos.narrow(2, 4, 2), shape12.pos));
  EXPECT_TRUE(torch::equal(task.t, LfdDataset(LfdDatasetKind::Lasa2D, sl::testing::project_data()).task(13).t));
}

TEST(LfdDatasets, NamesAreCaseInsensitiveAndUnknownNamesListTheKnownOnes) {
  EXPECT_EQ(sl::data::lfd_dataset_spec("LASA2D").kind, LfdDatasetKind::Lasa2D);
  try {
    sl::data::lfd_dataset_spec("mnist");
    FAIL();
  } catch (const sl::UsageError& e) {
    EXPECT_NE(std::string(e.what()).find("robottasks9"), std::string::npos) << e.what();
  }
}

class LfdDatasetsCorrupt : public ::testing::Test {
 protected:
  void SetUp() override {
    root = sl::testing::temp_dir("lfd_corrupt");
    fs::create_directories(root / "robottasks/pos_ori");
    fs::create_directories(root / "robot_hello_world/processed_demos");
  }
  void TearDown() override { fs::remove_all(root); }
  void write_robo(const std::string& name, const sl::io::NdArray& a) {
    sl::io::write_npy(root / "robottasks/pos_ori" / name, a);
  }
  std::string error_of(LfdDatasetKind kind, std::int64_t task) {
    try {
      LfdDataset(kind, root).task(task);
    } catch (const sl::Error& e) {
      return e.what();
    }
    return "";
  }
  fs::path root;
};

TEST_F(LfdDatasetsCorrupt, BadFilesGiveErrorsNamingTheFile) {
  using sl::io::DType;
  std::vector<double> unit(2 * 1000 * 7, 0.0);
  for (std::size_t i = 3; i < unit.size(); i += 7) unit[i] = 1.0;  // qw = 1: identity quaternions
  write_robo("good.npy", sl::io::NdArray::from_double(DType::Float64, {2, 1000, 7}, unit));
  write_robo("short.npy", sl::io::NdArray::from_double(DType::Float64, {2, 999, 7}, std::vector<double>(2 * 999 * 7, 0)));
  auto with_nan = unit;
  with_nan[100] = std::nan("");
  write_robo("nan.npy", sl::io::NdArray::from_double(DType::Float64, {2, 1000, 7}, with_nan));
  write_robo("ints.npy", sl::io::NdArray::from_double(DType::Int64, {2, 1000, 7}, unit));
  write_robo("notunit.npy", sl::io::NdArray::from_double(DType::Float64, {2, 1000, 7}, std::vector<double>(2 * 1000 * 7, 0.6)));  // norm 1.2
  sl::write_file_atomic(root / "robottasks/robottasks_pos_ori_sequence_all.txt",
                        "good.npy\nshort.npy\nnan.npy\nints.npy\nnotunit.npy\nmissing.npy\n");
  EXPECT_EQ(error_of(LfdDatasetKind::RoboTasks9, 0), "");
  for (auto [i, file, what] : std::vector<std::tuple<int, std::string, std::string>>{
           {1, "short.npy", "[M, 1000, 7]"}, {2, "nan.npy", "NaN"}, {3, "ints.npy", "float"},
           {4, "notunit.npy", "unit quaternions"}, {5, "missing.npy", "not found"}}) {
    const auto msg = error_of(LfdDatasetKind::RoboTasks9, i);
    EXPECT_NE(msg.find(file), std::string::npos) << file << ": " << msg;
    EXPECT_NE(msg.find(what), std::string::npos) << msg;
  }
  // Missing sequence file: an IoError naming it.
  const auto msg = error_of(LfdDatasetKind::HelloWorld, 0);
  EXPECT_NE(msg.find("helloworld_sequence_all.txt"), std::string::npos) << msg;
}
