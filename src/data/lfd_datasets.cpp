#include "stablelearn/data/lfd_datasets.h"

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <map>

#include <nlohmann/json.hpp>

#include "stablelearn/core/error.h"
#include "stablelearn/core/fs.h"
#include "stablelearn/data/tensor_convert.h"
#include "stablelearn/io/npy.h"
#include "stablelearn/io/npz.h"

namespace stablelearn::data {
namespace {

constexpr std::int64_t kSamples = 1000;  // every demonstration of every data set (spec §1.1)

const std::vector<LfdDatasetSpec> kSpecs = {
    {LfdDatasetKind::Lasa2D, "lasa2d", 2, 2, 2, false, "LASA/lasa_numpy_sequence_all.txt"},
    {LfdDatasetKind::Lasa8D, "lasa8d", 8, 8, 8, false, "LASA/lasa_numpy_8D_sequence_all.txt"},
    {LfdDatasetKind::Lasa16D, "lasa16d", 16, 16, 16, false, "LASA/lasa_numpy_16D/lasa_numpy_16D_sequence_all.txt"},
    {LfdDatasetKind::Lasa32D, "lasa32d", 32, 32, 32, false, "LASA/lasa_numpy_32D/lasa_numpy_32D_sequence_all.txt"},
    {LfdDatasetKind::HelloWorld, "helloworld", 2, 2, 2, false, "robot_hello_world/helloworld_sequence_all.txt"},
    {LfdDatasetKind::RoboTasks9, "robottasks9", 7, 6, 3, true, "robottasks/robottasks_pos_ori_sequence_all.txt"},
};

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return s;
}

/// Folder of a kind's data files, relative to the root.
fs::path data_folder(LfdDatasetKind kind) {
  switch (kind) {
    case LfdDatasetKind::Lasa2D: return "LASA/lasa_numpy";
    case LfdDatasetKind::Lasa8D: return "LASA/lasa_numpy_8D";
    case LfdDatasetKind::Lasa16D: return "LASA/lasa_numpy_16D";
    case LfdDatasetKind::Lasa32D: return "LASA/lasa_numpy_32D";
    case LfdDatasetKind::HelloWorld: return "robot_hello_world/processed_demos";
    case LfdDatasetKind::RoboTasks9: return "robottasks/pos_ori";
  }
  SL_THROW(InternalError, "unknown LfD data set kind");
}

bool is_highdim(LfdDatasetKind k) {
  return k == LfdDatasetKind::Lasa8D || k == LfdDatasetKind::Lasa16D || k == LfdDatasetKind::Lasa32D;
}

/// Float64 [M, T, dim] from a file's array, validated.
torch::Tensor checked_positions(const io::NdArray& a, const std::string& source, std::int64_t dim) {
  SL_CHECK(a.dtype == io::DType::Float64 || a.dtype == io::DType::Float32, DataError, source,
           ": expected float positions, got ", io::dtype_name(a.dtype));
  SL_CHECK(a.ndim() == 3 && a.shape[0] > 0 && a.shape[1] == kSamples && a.shape[2] == dim, DataError, source,
           ": expected positions of shape [M, ", kSamples, ", ", dim, "], got ", a.shape_str());
  auto t = to_tensor(a).to(torch::kFloat64);
  SL_CHECK(torch::isfinite(t).all().item<bool>(), DataError, source, ": positions contain NaN or inf");
  return t;
}

torch::Tensor checked_times(const io::NdArray& a, const std::string& source, std::int64_t demos) {
  SL_CHECK(a.dtype == io::DType::Float64 || a.dtype == io::DType::Float32, DataError, source,
           ": expected float time stamps, got ", io::dtype_name(a.dtype));
  SL_CHECK(a.ndim() == 2 && a.shape[0] == demos && a.shape[1] == kSamples, DataError, source,
           ": expected time stamps of shape [", demos, ", ", kSamples, "], got ", a.shape_str());
  auto t = to_tensor(a).to(torch::kFloat64);
  SL_CHECK(torch::isfinite(t).all().item<bool>(), DataError, source, ": time stamps contain NaN or inf");
  SL_CHECK((t.diff(1, 1) > 0).all().item<bool>(), DataError, source, ": time stamps are not strictly increasing");
  return t;
}

/// HelloWorld and RoboTasks9: t = linspace(0, 1000, 1000) / 60 for every demonstration (spec §1.4).
torch::Tensor fixed_rate_times(std::int64_t demos) {
  return (torch::linspace(0, 1000, kSamples, torch::kFloat64) / 60.0).unsqueeze(0).repeat({demos, 1});
}

LfdTask load_lasa2d(const fs::path& file, const std::string& name) {
  const auto arrays = io::read_npz(file);
  const auto pos_it = arrays.find("pos");
  const auto t_it = arrays.find("t");
  SL_CHECK(pos_it != arrays.end() && t_it != arrays.end(), DataError, file.string(),
           ": expected members 'pos' and 't' (LASA npz)");
  LfdTask task;
  task.name = name;
  task.pos = checked_positions(pos_it->second, file.string() + ":pos", 2);
  task.t = checked_times(t_it->second, file.string() + ":t", task.pos.size(0));
  return task;
}

/// lasa2d_tasks of a high-dimensional task: from metadata.json when the folder has one, else from
/// an 8D-style file name "task_a_b_c_d.npz".
std::vector<std::int64_t> highdim_components(const fs::path& folder, const std::string& name) {
  const auto meta_path = folder / "metadata.json";
  if (fs::exists(meta_path)) {
    nlohmann::json meta;
    try {
      meta = nlohmann::json::parse(read_file_text(meta_path));
    } catch (const nlohmann::json::exception& e) {
      SL_THROW(DataError, meta_path.string(), ": not valid JSON (", e.what(), ")");
    }
    SL_CHECK(meta.is_array(), DataError, meta_path.string(), ": expected a list of {highdim_filename, lasa2d_tasks}");
    for (const auto& entry : meta) {
      SL_CHECK(entry.is_object() && entry.contains("highdim_filename") && entry.contains("lasa2d_tasks"), DataError,
               meta_path.string(), ": every entry needs 'highdim_filename' and 'lasa2d_tasks'");
      if (entry["highdim_filename"] != name) continue;
      std::vector<std::int64_t> ids;
      for (const auto& v : entry["lasa2d_tasks"]) {
        SL_CHECK(v.is_number_integer(), DataError, meta_path.string(), ": ", name, ": lasa2d_tasks must be integers");
        ids.push_back(v.get<std::int64_t>());
      }
      return ids;
    }
    SL_THROW(DataError, meta_path.string(), ": no entry for '", name, "'");
  }
  // 8D naming convention: task_a_b_c_d.npz
  const std::string prefix = "task_", suffix = ".npz";
  SL_CHECK(name.rfind(prefix, 0) == 0 && name.size() > prefix.size() + suffix.size() &&
               name.compare(name.size() - suffix.size(), suffix.size(), suffix) == 0,
           DataError, folder.string(), ": no metadata.json, and '", name, "' is not named task_a_b_c_d.npz");
  std::vector<std::int64_t> ids;
  std::string body = name.substr(prefix.size(), name.size() - prefix.size() - suffix.size());
  std::size_t start = 0;
  while (start <= body.size()) {
    const auto end = body.find('_', start);
    const auto part = body.substr(start, end == std::string::npos ? std::string::npos : end - start);
    SL_CHECK(!part.empty() && std::all_of(part.begin(), part.end(), ::isdigit), DataError, folder.string(), ": '", name,
             "' is not named task_a_b_c_d.npz");
    ids.push_back(std::stoll(part));
    if (end == std::string::npos) break;
    start = end + 1;
  }
  return ids;
}

}  // namespace

const std::vector<LfdDatasetSpec>& lfd_dataset_specs() { return kSpecs; }

const LfdDatasetSpec& lfd_dataset_spec(const std::string& name) {
  const auto n = lower(name);
  for (const auto& s : kSpecs)
    if (n == s.name) return s;
  std::string known;
  for (const auto& s : kSpecs) known += std::string(known.empty() ? "" : ", ") + s.name;
  SL_THROW(UsageError, "unknown LfD data set '", name, "' (known: ", known, ")");
}

const LfdDatasetSpec& lfd_dataset_spec(LfdDatasetKind kind) {
  for (const auto& s : kSpecs)
    if (s.kind == kind) return s;
  SL_THROW(InternalError, "unknown LfD data set kind");
}

std::filesystem::path default_data_root() {
  if (const char* env = std::getenv("STABLELEARN_DATA"); env && *env) return env;
#ifdef SL_DATA_DIR_DEFAULT
  if (fs::is_directory(SL_DATA_DIR_DEFAULT)) return SL_DATA_DIR_DEFAULT;
#endif
  return "data";
}

LfdDataset::LfdDataset(LfdDatasetKind kind, std::filesystem::path root, std::filesystem::path sequence_file)
    : spec_(&lfd_dataset_spec(kind)), root_(std::move(root)) {
  SL_CHECK(fs::is_directory(root_), IoError, root_.string(), ": data root not found");
  fs::path seq = sequence_file.empty() ? fs::path(spec_->default_sequence) : sequence_file;
  if (seq.is_relative() && !fs::exists(seq)) seq = root_ / seq;
  SL_CHECK(fs::exists(seq), IoError, seq.string(), ": sequence file not found (", spec_->name, ")");
  files_ = read_lines(seq);
  SL_CHECK(!files_.empty(), DataError, seq.string(), ": sequence file lists no tasks");
}

LfdTask LfdDataset::task(std::int64_t i) const {
  SL_CHECK(i >= 0 && i < num_tasks(), UsageError, spec_->name, ": task ", i, " out of range (", num_tasks(), " tasks)");
  const std::string& name = files_[static_cast<std::size_t>(i)];
  const fs::path folder = root_ / data_folder(spec_->kind);
  if (is_highdim(spec_->kind)) {
    auto task = build_lasa_highdim(root_, highdim_components(folder, name), name);
    SL_CHECK(task.pos.size(2) == spec_->dim, DataError, folder.string(), ": '", name, "' combines ",
             task.pos.size(2) / 2, " LASA shapes, expected ", spec_->dim / 2, " for ", spec_->name);
    return task;
  }
  const fs::path file = folder / name;
  SL_CHECK(fs::exists(file), IoError, file.string(), ": task file listed in the sequence file not found");
  if (spec_->kind == LfdDatasetKind::Lasa2D) return load_lasa2d(file, name);

  LfdTask task;
  task.name = name;
  task.pos = checked_positions(io::read_npy(file), file.string(), spec_->dim);
  task.t = fixed_rate_times(task.pos.size(0));
  if (spec_->has_orientation) {
    const auto norms = task.pos.narrow(2, 3, 4).norm(2, -1);
    const double worst = (norms - 1).abs().max().item<double>();
    SL_CHECK(worst < 1e-6, DataError, file.string(), ": columns 3..6 must be unit quaternions (w, x, y, z); largest |norm - 1| = ",
             worst);
  }
  return task;
}

LfdTask build_lasa_highdim(const std::filesystem::path& root, const std::vector<std::int64_t>& lasa2d_tasks,
                           const std::string& name) {
  SL_CHECK(!lasa2d_tasks.empty(), DataError, name, ": lists no LASA 2D shapes");
  std::vector<torch::Tensor> parts;
  LfdTask task;
  task.name = name;
  for (const auto id : lasa2d_tasks) {
    SL_CHECK(id >= 0 && id < 26, DataError, name, ": LASA 2D task index ", id, " out of range 0..25");
    const auto file = root / "LASA/lasa_numpy" / ("task_x" + std::to_string(id) + "_y" + std::to_string(id) + ".npz");
    SL_CHECK(fs::exists(file), IoError, file.string(), ": LASA 2D file needed by ", name, " not found");
    auto part = load_lasa2d(file, file.filename().string());
    if (!parts.empty())
      SL_CHECK(part.pos.size(0) == parts.front().size(0), DataError, file.string(), ": has ", part.pos.size(0),
               " demonstrations, the other shapes of ", name, " have ", parts.front().size(0));
    parts.push_back(part.pos);
    task.t = part.t;  // t of the last listed shape (spec §1.3)
  }
  task.pos = torch::cat(parts, 2);
  return task;
}

}  // namespace stablelearn::data
