// MATLAB .mat reading through matio. matio's own log messages are captured (not printed) and
// appended to our errors, so a failure reads as one DataError naming the file and the variable.
#include "stablelearn/io/mat.h"

#include <matio.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <memory>
#include <mutex>

#include "mat5_check.h"
#include "stablelearn/core/error.h"

namespace stablelearn::io {
namespace {

/// Messages matio logged on this thread since the last MatFile was opened, and how many of
/// them were errors (as opposed to warnings or debug output).
thread_local std::string t_matio_log;
thread_local int t_matio_errors = 0;

void capture_matio_log(int level, char* message) {
  if ((level & (MATIO_LOG_LEVEL_ERROR | MATIO_LOG_LEVEL_CRITICAL)) != 0) ++t_matio_errors;
  try {
    if (!t_matio_log.empty()) t_matio_log += "; ";
    t_matio_log += message != nullptr ? message : "(null)";
  } catch (...) {
    // A C callback must not throw; losing a diagnostic is acceptable.
  }
}

/// Routes matio's (and through it HDF5's) diagnostics to capture_matio_log, once per process.
void install_matio_logger() {
  static std::once_flag once;
  std::call_once(once, [] { Mat_LogInitFunc("stablelearn", &capture_matio_log); });
}

/// " (matio: ...)" when matio logged something, else "".
std::string matio_detail() {
  if (t_matio_log.empty()) return "";
  std::string msg = t_matio_log.size() > 300 ? t_matio_log.substr(0, 300) + "..." : t_matio_log;
  return " (matio: " + msg + ")";
}

struct VarFree {
  void operator()(matvar_t* v) const { Mat_VarFree(v); }
};
using VarPtr = std::unique_ptr<matvar_t, VarFree>;

/// An open .mat file.
class MatFile {
 public:
  explicit MatFile(const std::filesystem::path& path) : path_(path.string()) {
    install_matio_logger();
    t_matio_log.clear();
    t_matio_errors = 0;
    std::error_code ec;
    SL_CHECK(std::filesystem::is_regular_file(path, ec), IoError, path_, ": cannot open for reading (",
             ec ? ec.message() : "not a regular file", ")");
    // Tell an unreadable file (IoError) from one matio does not recognise (DataError).
    SL_CHECK(std::ifstream(path, std::ios::binary).good(), IoError, path_, ": cannot open for reading (",
             std::strerror(errno), ")");
    // matio opens an empty file as a v4 file without variables; say what it really is.
    SL_CHECK(std::filesystem::file_size(path, ec) > 0 || ec, DataError, path_, ": empty file, not a MATLAB .mat file");
    // Sizes the headers claim, bounded by the bytes that must hold them, before matio allocates them.
    detail::check_mat5_file(path_, path);
    mat_ = Mat_Open(path_.c_str(), MAT_ACC_RDONLY);
    SL_CHECK(mat_ != nullptr, DataError, path_, ": not a MATLAB .mat file (expected a v4, v5, v7 or v7.3 MAT-file)",
             matio_detail());
  }
  ~MatFile() { Mat_Close(mat_); }
  MatFile(const MatFile&) = delete;
  MatFile& operator=(const MatFile&) = delete;

  const std::string& path() const { return path_; }

  /// The variable `name` with its data, or null when the file has none.
  VarPtr read(const char* name) const { return VarPtr(Mat_VarRead(mat_, name)); }

  /// Header information (no data) of every variable, in file order.
  std::vector<VarPtr> infos() const {
    std::vector<VarPtr> out;
    SL_CHECK(Mat_Rewind(mat_) == 0, DataError, path_, ": cannot rewind", matio_detail());
    while (matvar_t* v = Mat_VarReadNextInfo(mat_)) out.emplace_back(v);
    return out;
  }

  /// "a, b, c" listing the variable names, for messages.
  std::string names() const {
    std::string s;
    for (const auto& v : infos()) s += (s.empty() ? "" : ", ") + std::string(v->name != nullptr ? v->name : "?");
    return s.empty() ? "none" : s;
  }

 private:
  std::string path_;
  mat_t* mat_ = nullptr;
};

const char* class_name(const matvar_t* v) {
  if (v->isLogical) return "logical";
  switch (v->class_type) {
    case MAT_C_EMPTY: return "empty";
    case MAT_C_CELL: return "cell";
    case MAT_C_STRUCT: return "struct";
    case MAT_C_OBJECT: return "object";
    case MAT_C_CHAR: return "char";
    case MAT_C_SPARSE: return "sparse";
    case MAT_C_DOUBLE: return "double";
    case MAT_C_SINGLE: return "single";
    case MAT_C_INT8: return "int8";
    case MAT_C_UINT8: return "uint8";
    case MAT_C_INT16: return "int16";
    case MAT_C_UINT16: return "uint16";
    case MAT_C_INT32: return "int32";
    case MAT_C_UINT32: return "uint32";
    case MAT_C_INT64: return "int64";
    case MAT_C_UINT64: return "uint64";
    case MAT_C_FUNCTION: return "function";
    case MAT_C_OPAQUE: return "opaque";
  }
  return "unknown";
}

std::vector<std::int64_t> dims_of(const matvar_t* v) {
  std::vector<std::int64_t> d;
  for (int k = 0; k < v->rank && v->dims != nullptr; ++k) d.push_back(static_cast<std::int64_t>(v->dims[k]));
  return d;
}

/// "a 2 x 1000 double" style description for messages.
std::string describe(const matvar_t* v) {
  std::string s = "a ";
  const auto d = dims_of(v);
  for (std::size_t k = 0; k < d.size(); ++k) s += (k > 0 ? " x " : "") + std::to_string(d[k]);
  s += std::string(d.empty() ? "" : " ") + (v->isComplex ? "complex " : "") + class_name(v);
  return s;
}

bool is_real_numeric(const matvar_t* v) {
  switch (v->class_type) {
    case MAT_C_DOUBLE:
    case MAT_C_SINGLE:
    case MAT_C_INT8:
    case MAT_C_UINT8:
    case MAT_C_INT16:
    case MAT_C_UINT16:
    case MAT_C_INT32:
    case MAT_C_UINT32:
    case MAT_C_INT64:
    case MAT_C_UINT64: return !v->isComplex;
    default: return false;
  }
}

template <typename T>
void append_values(const void* data, std::size_t n, std::vector<double>& out) {
  for (std::size_t i = 0; i < n; ++i) {
    T x;
    std::memcpy(&x, static_cast<const char*>(data) + i * sizeof(T), sizeof(T));
    out.push_back(static_cast<double>(x));
  }
}

/// Values of a real numeric variable as double, in MATLAB's column-major order.
std::vector<double> numeric_values(const matvar_t* v, const std::string& what) {
  SL_CHECK(is_real_numeric(v), DataError, what, " is ", describe(v), ", expected a real numeric array");
  std::size_t n = 1;
  for (const std::int64_t d : dims_of(v)) {
    SL_CHECK(!__builtin_mul_overflow(n, static_cast<std::size_t>(d), &n), DataError, what, " has dimensions ",
             describe(v), " whose product overflows");
  }
  std::vector<double> out;
  if (n == 0) return out;
  SL_CHECK(v->data != nullptr && v->data_size > 0 && v->nbytes >= n * static_cast<std::size_t>(v->data_size), DataError,
           what, ": data missing or shorter than its ", n, " elements", matio_detail());
  out.reserve(n);
  switch (v->class_type) {
    case MAT_C_DOUBLE: append_values<double>(v->data, n, out); break;
    case MAT_C_SINGLE: append_values<float>(v->data, n, out); break;
    case MAT_C_INT8: append_values<std::int8_t>(v->data, n, out); break;
    case MAT_C_UINT8: append_values<std::uint8_t>(v->data, n, out); break;
    case MAT_C_INT16: append_values<std::int16_t>(v->data, n, out); break;
    case MAT_C_UINT16: append_values<std::uint16_t>(v->data, n, out); break;
    case MAT_C_INT32: append_values<std::int32_t>(v->data, n, out); break;
    case MAT_C_UINT32: append_values<std::uint32_t>(v->data, n, out); break;
    case MAT_C_INT64: append_values<std::int64_t>(v->data, n, out); break;
    case MAT_C_UINT64: append_values<std::uint64_t>(v->data, n, out); break;
    default: break;  // excluded by is_real_numeric
  }
  return out;
}

double scalar_value(const matvar_t* v, const std::string& what) {
  const std::vector<double> x = numeric_values(v, what);
  SL_CHECK(x.size() == 1, DataError, what, " is ", describe(v), ", expected a scalar");
  return x[0];
}

/// A [rows x T] real matrix as a C-order [T, rows] float64 array (rows = 2 for pos/vel/acc) or,
/// for rows = 1, as [T]. `t_expected` < 0 accepts any T >= 1.
NdArray sample_matrix(const matvar_t* v, std::int64_t rows, std::int64_t t_expected, const std::string& what) {
  const auto d = dims_of(v);
  const bool ok_shape = d.size() == 2 && d[0] == rows && d[1] >= 1 && (t_expected < 0 || d[1] == t_expected);
  SL_CHECK(is_real_numeric(v) && ok_shape, DataError, what, " is ", describe(v), ", expected a real ", rows, " x ",
           t_expected < 0 ? std::string("T") : std::to_string(t_expected), " matrix");
  // Column-major [rows x T] has sample t, row r at r + rows*t: exactly C order for [T, rows].
  std::vector<std::int64_t> shape = rows == 1 ? std::vector<std::int64_t>{d[1]} : std::vector<std::int64_t>{d[1], rows};
  return NdArray::from_double(DType::Float64, std::move(shape), numeric_values(v, what));
}

std::string field_names(matvar_t* s) {
  std::string out;
  char* const* names = Mat_VarGetStructFieldnames(s);
  const unsigned n = Mat_VarGetNumberOfFields(s);
  for (unsigned k = 0; names != nullptr && k < n; ++k) out += (k > 0 ? ", " : "") + std::string(names[k]);
  return out.empty() ? "none" : out;
}

matvar_t* required_field(matvar_t* s, const char* field, const std::string& where) {
  matvar_t* f = Mat_VarGetStructFieldByName(s, field, 0);
  if (f != nullptr) return f;
  // matio leaves a field empty when the file ends (or its data is corrupt) before the field's
  // data: the name is listed but there is no value.
  bool listed = false;
  char* const* names = Mat_VarGetStructFieldnames(s);
  for (unsigned k = 0; names != nullptr && k < Mat_VarGetNumberOfFields(s); ++k)
    listed = listed || std::strcmp(names[k], field) == 0;
  SL_CHECK(!listed, DataError, where, ".", field, " could not be read (the file is truncated or corrupt)",
           matio_detail());
  SL_THROW(DataError, where, " has no field '", field, "' (fields: ", field_names(s),
           "; expected pos, t, vel, acc, dt)");
}

}  // namespace

LasaMat read_lasa_mat(const std::filesystem::path& path) {
  const MatFile file(path);
  const std::string& p = file.path();
  const VarPtr demos = file.read("demos");
  SL_CHECK(demos != nullptr, DataError, p, ": no variable 'demos' (variables: ", file.names(),
           "); expected a LASA handwriting file with 'demos' and 'dt'", matio_detail());
  // matio reads what it can of a damaged variable (leaving values half-filled or missing) and
  // only logs the problem; take any logged error as a corrupt file.
  SL_CHECK(t_matio_errors == 0, DataError, p,
           ": 'demos' could not be read completely (the file is truncated or corrupt)", matio_detail());
  const auto d = dims_of(demos.get());
  SL_CHECK(demos->class_type == MAT_C_CELL && d.size() == 2 && (d[0] == 1 || d[1] == 1) && d[0] * d[1] >= 1, DataError,
           p, ": 'demos' is ", describe(demos.get()), ", expected a 1 x n cell array of structs");
  const std::int64_t n = d[0] * d[1];

  LasaMat out;
  for (std::int64_t i = 0; i < n; ++i) {
    const std::string where = p + ": demos{" + std::to_string(i + 1) + "}";
    matvar_t* cell = Mat_VarGetCell(demos.get(), static_cast<int>(i));
    SL_CHECK(cell != nullptr, DataError, where, " is missing", matio_detail());
    const auto cd = dims_of(cell);
    SL_CHECK(cell->class_type == MAT_C_STRUCT && cd.size() == 2 && cd[0] == 1 && cd[1] == 1, DataError, where, " is ",
             describe(cell), ", expected a 1 x 1 struct with fields pos, t, vel, acc, dt");
    LasaMatDemo demo;
    demo.pos = sample_matrix(required_field(cell, "pos", where), 2, -1, where + ".pos");
    const std::int64_t t_len = demo.pos.shape[0];
    demo.t = sample_matrix(required_field(cell, "t", where), 1, t_len, where + ".t");
    demo.vel = sample_matrix(required_field(cell, "vel", where), 2, t_len, where + ".vel");
    demo.acc = sample_matrix(required_field(cell, "acc", where), 2, t_len, where + ".acc");
    demo.dt = scalar_value(required_field(cell, "dt", where), where + ".dt");
    out.demos.push_back(std::move(demo));
  }

  const VarPtr dt = file.read("dt");
  SL_CHECK(dt != nullptr, DataError, p, ": no variable 'dt' (variables: ", file.names(),
           "); expected a LASA handwriting file with 'demos' and 'dt'", matio_detail());
  SL_CHECK(t_matio_errors == 0, DataError, p, ": 'dt' could not be read completely (the file is truncated or corrupt)",
           matio_detail());
  out.dt = scalar_value(dt.get(), p + ": 'dt'");
  return out;
}

std::vector<MatVariableInfo> list_mat_variables(const std::filesystem::path& path) {
  const MatFile file(path);
  std::vector<MatVariableInfo> out;
  const std::vector<VarPtr> infos = file.infos();
  SL_CHECK(t_matio_errors == 0, DataError, file.path(),
           ": cannot list the variables (the file is truncated or corrupt)", matio_detail());
  for (const VarPtr& info : infos) {
    MatVariableInfo v;
    v.name = info->name != nullptr ? info->name : "";
    v.class_name = class_name(info.get());
    v.dims = dims_of(info.get());
    if (is_real_numeric(info.get())) {
      const VarPtr full = file.read(v.name.c_str());
      SL_CHECK(full != nullptr && t_matio_errors == 0, DataError, file.path(), ": cannot read variable '", v.name,
               "' (the file is truncated or corrupt)", matio_detail());
      const std::string what = file.path() + ": '" + v.name + "'";
      v.value = NdArray::from_double(DType::Float64, dims_of(full.get()), numeric_values(full.get(), what));
      convert_fortran_to_c_order(v.value);
    }
    out.push_back(std::move(v));
  }
  return out;
}

}  // namespace stablelearn::io
