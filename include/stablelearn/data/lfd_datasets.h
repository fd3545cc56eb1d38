// Learning-from-demonstration data sets (shared/specs/clfd-snode.md §1): LASA 2D (26 tasks),
// LASA 8D/16D/32D (10 tasks each, built from LASA 2D with shipped metadata), HelloWorld (7 tasks)
// and RoboTasks9 (9 tasks, position + scalar-first quaternion).
//
// A task is one file of M demonstrations of T = 1000 samples. Raw arrays are float64 tensors on
// the CPU. The task order of a run is given by a sequence file (one data-file name per line).
//
// Data root layout (the project's data/ folder, or ../shared/data):
//   LASA/lasa_numpy/task_x{i}_y{i}.npz            pos [7,1000,2], t [7,1000]
//   LASA/lasa_numpy_sequence_all.txt
//   LASA/lasa_numpy_{8D,16D,32D}/metadata.json    [{"highdim_filename", "lasa2d_tasks"}]
//   LASA/lasa_numpy_8D_sequence_all.txt, LASA/lasa_numpy_{16D,32D}/lasa_numpy_*_sequence_*.txt
//   robot_hello_world/processed_demos/{h,e,l,o,w,r,d}.npy   [8,1000,2] (cm)
//   robot_hello_world/helloworld_sequence_{all,3}.txt
//   robottasks/pos_ori/<task>.npy                 [9,1000,7] = px,py,pz,qw,qx,qy,qz
//   robottasks/robottasks_pos_ori_sequence_all.txt
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include <torch/types.h>

namespace stablelearn::data {

enum class LfdDatasetKind { Lasa2D, Lasa8D, Lasa16D, Lasa32D, HelloWorld, RoboTasks9 };

/// Static facts of a data set kind.
struct LfdDatasetSpec {
  LfdDatasetKind kind;
  const char* name;           ///< "lasa2d", "lasa8d", "lasa16d", "lasa32d", "helloworld", "robottasks9"
  std::int64_t dim;           ///< columns of the raw array (2, 8, 16, 32, 2, 7)
  std::int64_t state_dim;     ///< model state dimension (2, 8, 16, 32, 2, 6)
  std::int64_t position_dim;  ///< leading position columns (2, 8, 16, 32, 2, 3)
  bool has_orientation;       ///< RoboTasks9: quaternion columns 3..6
  const char* default_sequence;  ///< sequence file relative to the data root
};

/// All kinds, in the order above.
const std::vector<LfdDatasetSpec>& lfd_dataset_specs();
/// Looks a kind up by name (case-insensitive); UsageError listing the names when unknown.
const LfdDatasetSpec& lfd_dataset_spec(const std::string& name);
const LfdDatasetSpec& lfd_dataset_spec(LfdDatasetKind kind);

/// Default data root: $STABLELEARN_DATA if set, else the data/ folder the build was configured
/// with (SL_DATA_DIR), else "./data".
std::filesystem::path default_data_root();

/// One task: raw demonstrations.
struct LfdTask {
  std::string name;   ///< file name as in the sequence file
  torch::Tensor pos;  ///< float64 [M, T, dim] (RoboTasks9: position + quaternion)
  torch::Tensor t;    ///< float64 [M, T] time stamps in seconds
};

/// A data set: a kind, a root and a task order.
class LfdDataset {
 public:
  /// `sequence_file` empty = the kind's default; a relative path is resolved against the root.
  LfdDataset(LfdDatasetKind kind, std::filesystem::path root, std::filesystem::path sequence_file = {});

  const LfdDatasetSpec& spec() const { return *spec_; }
  const std::filesystem::path& root() const { return root_; }
  std::int64_t num_tasks() const { return static_cast<std::int64_t>(files_.size()); }
  const std::vector<std::string>& task_files() const { return files_; }

  /// Loads task `i` (0-based index into the sequence). Validates shapes, finiteness, and for
  /// RoboTasks9 unit quaternions; DataError naming the file otherwise.
  LfdTask task(std::int64_t i) const;

 private:
  const LfdDatasetSpec* spec_;
  std::filesystem::path root_;
  std::vector<std::string> files_;
};

/// Builds one high-dimensional LASA task by concatenating 2-D LASA tasks `lasa2d_tasks` (indices
/// into the LASA 2-D sequence, task_x{i}_y{i}.npz) along the feature axis; t = t of the last one.
LfdTask build_lasa_highdim(const std::filesystem::path& root, const std::vector<std::int64_t>& lasa2d_tasks,
                           const std::string& name);

}  // namespace stablelearn::data
