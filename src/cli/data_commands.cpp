// stablelearn data info PATH: what is in a data file or a data-set folder.
#include <algorithm>
#include <cmath>
#include <iostream>
#include <limits>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "commands.h"
#include "stablelearn/core/error.h"
#include "stablelearn/core/fs.h"
#include "stablelearn/data/lfd_datasets.h"
#include "stablelearn/io/idx.h"
#include "stablelearn/io/mat.h"
#include "stablelearn/io/npy.h"
#include "stablelearn/io/npz.h"

namespace stablelearn::cli {
namespace {

using nlohmann::json;

json array_summary(const std::string& name, const io::NdArray& a) {
  json j{{"name", name}, {"dtype", io::dtype_name(a.dtype)}, {"shape", a.shape}};
  if (a.numel() > 0) {
    const auto v = a.to_double();
    double lo = std::numeric_limits<double>::infinity(), hi = -lo, sum = 0;
    std::int64_t nonfinite = 0;
    for (double x : v) {
      if (!std::isfinite(x)) {
        ++nonfinite;
        continue;
      }
      lo = std::min(lo, x);
      hi = std::max(hi, x);
      sum += x;
    }
    const auto finite = static_cast<std::int64_t>(v.size()) - nonfinite;
    if (finite > 0) {
      j["min"] = lo;
      j["max"] = hi;
      j["mean"] = sum / static_cast<double>(finite);
    }
    if (nonfinite > 0) j["nonfinite"] = nonfinite;
  }
  return j;
}

bool has_suffix(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

bool looks_like_idx(const fs::path& p) {
  const auto n = p.filename().string();
  return n.find("idx") != std::string::npos || n.find("ubyte") != std::string::npos;
}

/// Arrays of one file, chosen by extension (IDX by name: "*idx*" / "*ubyte*", plain or .gz).
json file_arrays(const fs::path& path) {
  SL_CHECK(fs::exists(path), IoError, path.string(), ": no such file or folder");
  const auto name = path.filename().string();
  json arrays = json::array();
  if (has_suffix(name, ".npy")) {
    arrays.push_back(array_summary(name, io::read_npy(path)));
  } else if (has_suffix(name, ".npz")) {
    for (const auto& [member, a] : io::read_npz(path)) arrays.push_back(array_summary(member, a));
  } else if (has_suffix(name, ".mat")) {
    for (const auto& v : io::list_mat_variables(path)) {
      json j = v.value.numel() > 0 ? array_summary(v.name, v.value) : json{{"name", v.name}, {"shape", v.dims}};
      j["class"] = v.class_name;
      arrays.push_back(j);
    }
  } else if (looks_like_idx(path)) {
    arrays.push_back(array_summary(name, io::read_idx(path)));
  } else {
    SL_THROW(UsageError, path.string(),
             ": unknown file type (expected .npy, .npz, .mat, or an IDX file named *idx* / *ubyte*, optionally .gz)");
  }
  return {{"path", path.string()}, {"arrays", arrays}};
}

}  // namespace

json dataset_summary(const fs::path& root) {
  json sets = json::array();
  for (const auto& spec : data::lfd_dataset_specs()) {
    if (!fs::exists(root / spec.default_sequence)) continue;
    data::LfdDataset ds(spec.kind, root);
    const auto first = ds.task(0);
    sets.push_back({{"name", spec.name},
                    {"tasks", ds.num_tasks()},
                    {"demos_per_task", first.pos.size(0)},
                    {"samples_per_demo", first.pos.size(1)},
                    {"dim", spec.dim},
                    {"state_dim", spec.state_dim},
                    {"sequence", spec.default_sequence},
                    {"first_task", ds.task_files().front()}});
  }
  return sets;
}

void print_dataset_table(const fs::path& root, const json& sets) {
  std::cout << "data sets under " << root.string() << "\n";
  std::cout << fmt::format("  {:<12} {:>5} {:>6} {:>8} {:>4} {:>6}  {}\n", "name", "tasks", "demos", "samples", "dim", "state", "sequence");
  for (const auto& s : sets)
    std::cout << fmt::format("  {:<12} {:>5} {:>6} {:>8} {:>4} {:>6}  {}\n", s["name"].get<std::string>(), s["tasks"].get<std::int64_t>(),
                             s["demos_per_task"].get<std::int64_t>(), s["samples_per_demo"].get<std::int64_t>(),
                             s["dim"].get<std::int64_t>(), s["state_dim"].get<std::int64_t>(), s["sequence"].get<std::string>());
}

namespace {

void print_arrays(const json& file) {
  std::cout << file["path"].get<std::string>() << "\n";
  std::cout << fmt::format("  {:<22} {:<8} {:<18} {:>14} {:>14} {:>14}\n", "name", "dtype", "shape", "min", "max", "mean");
  for (const auto& a : file["arrays"]) {
    std::string shape = "[";
    for (std::size_t i = 0; i < a["shape"].size(); ++i) shape += (i ? ", " : "") + std::to_string(a["shape"][i].get<std::int64_t>());
    shape += "]";
    const auto num = [&](const char* k) { return a.contains(k) ? fmt::format("{:.6g}", a[k].get<double>()) : std::string("-"); };
    const std::string dtype = a.contains("dtype") ? a["dtype"].get<std::string>() : a.value("class", "");
    std::cout << fmt::format("  {:<22} {:<8} {:<18} {:>14} {:>14} {:>14}{}\n", a["name"].get<std::string>(), dtype, shape,
                             num("min"), num("max"), num("mean"),
                             a.contains("nonfinite") ? fmt::format("  ({} non-finite)", a["nonfinite"].get<std::int64_t>()) : "");
  }
}

}  // namespace

void register_data_commands(CLI::App& app, CommandRegistry& reg) {
  auto* data = app.add_subcommand("data", "Inspect data files and data sets");
  data->require_subcommand(1);

  struct InfoArgs {
    std::string path;
    bool json = false;
  };
  auto args = std::make_shared<InfoArgs>();
  auto* info = data->add_subcommand(
      "info",
      "Arrays in a .npy/.npz/.mat/IDX file (name, dtype, shape, min/max/mean), or a summary of a "
      "data-set folder (a data root such as data/, or any folder of data files)");
  info->add_option("PATH", args->path, "File or folder")->required();
  info->add_flag("--json", args->json, "Print one JSON object instead of a table");
  info->footer("Example: stablelearn data info data/LASA/lasa_numpy/task_x0_y0.npz");
  reg.add(info, [args]() {
    const fs::path path(args->path);
    SL_CHECK(fs::exists(path), IoError, args->path, ": no such file or folder");
    if (!fs::is_directory(path)) {
      const json file = file_arrays(path);
      if (args->json) std::cout << file.dump(2) << "\n";
      else print_arrays(file);
      return 0;
    }
    json out{{"path", path.string()}};
    const json sets = dataset_summary(path);
    if (!sets.empty()) out["datasets"] = sets;
    json files = json::array();
    std::vector<fs::path> entries;
    for (const auto& e : fs::directory_iterator(path))
      if (e.is_regular_file()) entries.push_back(e.path());
    std::sort(entries.begin(), entries.end());
    for (const auto& p : entries) {
      const auto n = p.filename().string();
      if (has_suffix(n, ".npy") || has_suffix(n, ".npz") || has_suffix(n, ".mat") || looks_like_idx(p)) files.push_back(file_arrays(p));
    }
    if (!files.empty()) out["files"] = files;
    SL_CHECK(!sets.empty() || !files.empty(), DataError, path.string(),
             ": no data sets (LASA/, robot_hello_world/, robottasks/) and no .npy/.npz/.mat/IDX files here");
    if (args->json) {
      std::cout << out.dump(2) << "\n";
      return 0;
    }
    if (!sets.empty()) print_dataset_table(path, sets);
    for (const auto& f : files) print_arrays(f);
    return 0;
  });
}

}  // namespace stablelearn::cli
