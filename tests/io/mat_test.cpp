// Tests of the MATLAB .mat reader: the original LASA files in shared/data/LASA/DataSet compared
// bit for bit with the NumPy archives that were made from them (spec clfd-snode §1.2), small
// files written here with matio's writer (valid, missing fields, wrong shapes), and files that
// are not .mat files at all.
#include "stablelearn/io/mat.h"

#include <chrono>
#include <matio.h>

#include <cstring>

#include "io_testing.h"
#include "stablelearn/core/fs.h"
#include "stablelearn/io/npz.h"
#include "testing.h"

namespace stablelearn::io {
namespace {

using stablelearn::testing::expect_error;

std::filesystem::path lasa_mat(const std::string& name) {
  return testing::shared_data() / "LASA" / "DataSet" / (name + ".mat");
}

/// A real double matrix field of a synthetic demo: rows x cols, values in column-major order.
struct Field {
  std::string name;
  std::size_t rows = 0, cols = 0;
  std::vector<double> values;
};

/// Field `name` of rows x t with value(r, c) = base + 10 r + c.
Field field(const std::string& name, std::size_t rows, std::size_t t, double base = 0) {
  Field f{name, rows, t, {}};
  for (std::size_t c = 0; c < t; ++c)
    for (std::size_t r = 0; r < rows; ++r) f.values.push_back(base + 10.0 * r + c);
  return f;
}

matvar_t* double_var(const char* name, std::size_t rows, std::size_t cols, const double* data) {
  std::size_t dims[2] = {rows, cols};
  return Mat_VarCreate(name, MAT_C_DOUBLE, MAT_T_DOUBLE, 2, dims, const_cast<double*>(data), 0);  // copies data
}

/// Writes a MAT v5 file with matio: `demos` as a 1 x n cell of 1 x 1 structs with the given
/// fields (omitted when `demos` is empty) and the scalar `dt` when `with_dt`.
void write_lasa_like(const std::filesystem::path& path, const std::vector<std::vector<Field>>& demos, bool with_dt) {
  mat_t* mat = Mat_CreateVer(path.c_str(), nullptr, MAT_FT_MAT5);
  ASSERT_NE(mat, nullptr);
  if (!demos.empty()) {
    std::size_t cdims[2] = {1, demos.size()};
    matvar_t* cell = Mat_VarCreate("demos", MAT_C_CELL, MAT_T_CELL, 2, cdims, nullptr, 0);
    for (std::size_t i = 0; i < demos.size(); ++i) {
      std::vector<const char*> names;
      for (const auto& f : demos[i]) names.push_back(f.name.c_str());
      names.push_back(nullptr);  // the field list is null-terminated
      const std::size_t sdims[2] = {1, 1};
      matvar_t* st = Mat_VarCreateStruct2(nullptr, 2, sdims, names.data());
      for (const auto& f : demos[i])
        Mat_VarSetStructFieldByName(st, f.name.c_str(), 0, double_var(nullptr, f.rows, f.cols, f.values.data()));
      Mat_VarSetCell(cell, static_cast<int>(i), st);
    }
    ASSERT_EQ(Mat_VarWrite(mat, cell, MAT_COMPRESSION_NONE), 0);
    Mat_VarFree(cell);
  }
  if (with_dt) {
    const double dt = 0.01;
    matvar_t* v = double_var("dt", 1, 1, &dt);
    ASSERT_EQ(Mat_VarWrite(mat, v, MAT_COMPRESSION_ZLIB), 0);
    Mat_VarFree(v);
  }
  Mat_Close(mat);
}

std::vector<Field> good_demo(std::size_t t = 4) {
  return {field("pos", 2, t), field("t", 1, t, 100), field("vel", 2, t, 200), field("acc", 2, t, 300),
          Field{"dt", 1, 1, {0.5}}};
}

// ---------------------------------------------------------------------------------------------
// The original LASA files

TEST(MatLasa, AngleIsBitIdenticalToItsNpz) {
  const LasaMat m = read_lasa_mat(lasa_mat("Angle"));
  const auto npz = read_npz(testing::project_data() / "LASA" / "lasa_numpy" / "task_x0_y0.npz");
  const NdArray& pos = npz.at("pos");
  const NdArray& t = npz.at("t");
  ASSERT_EQ(m.demos.size(), 7u);
  for (std::size_t i = 0; i < 7; ++i) {
    const LasaMatDemo& d = m.demos[i];
    ASSERT_EQ(d.pos.shape, (std::vector<std::int64_t>{1000, 2}));
    ASSERT_EQ(d.t.shape, (std::vector<std::int64_t>{1000}));
    EXPECT_EQ(d.vel.shape, (std::vector<std::int64_t>{1000, 2}));
    EXPECT_EQ(d.acc.shape, (std::vector<std::int64_t>{1000, 2}));
    EXPECT_EQ(std::memcmp(d.pos.bytes.data(), pos.bytes.data() + i * 16000, 16000), 0) << "demo " << i;
    EXPECT_EQ(std::memcmp(d.t.bytes.data(), t.bytes.data() + i * 8000, 8000), 0) << "demo " << i;
    // LASA convention: every demonstration ends at the origin.
    EXPECT_EQ(d.pos.to_double()[1998], 0.0);
    EXPECT_EQ(d.pos.to_double()[1999], 0.0);
    EXPECT_GT(d.dt, 0.0);
  }
  // Spec §1.2: Angle demo 0 has dt = 0.0024539 (t_end / 999).
  EXPECT_NEAR(m.demos[0].t.to_double()[1], 0.0024539, 1e-7);
  EXPECT_GT(m.dt, 0.0);
  EXPECT_LT(m.dt, 0.01);
}

TEST(MatLasa, EveryShapeIsBitIdenticalToItsNpz) {
  // Task i of lasa_numpy is the i-th name of lasa_sequence_all.txt (spec §1.2).
  const auto names = read_lines(testing::project_data() / "LASA" / "lasa_sequence_all.txt");
  ASSERT_EQ(names.size(), 26u);
  for (std::size_t i = 0; i < names.size(); ++i) {
    const std::string stem = names[i].substr(0, names[i].size() - 4);  // drop ".mat"
    const LasaMat m = read_lasa_mat(lasa_mat(stem));
    const auto npz = read_npz(testing::project_data() / "LASA" / "lasa_numpy" /
                              ("task_x" + std::to_string(i) + "_y" + std::to_string(i) + ".npz"));
    ASSERT_EQ(m.demos.size(), 7u) << stem;
    for (std::size_t d = 0; d < 7; ++d) {
      ASSERT_EQ(m.demos[d].pos.bytes.size(), 16000u) << stem;
      EXPECT_EQ(std::memcmp(m.demos[d].pos.bytes.data(), npz.at("pos").bytes.data() + d * 16000, 16000), 0)
          << stem << " demo " << d;
      EXPECT_EQ(std::memcmp(m.demos[d].t.bytes.data(), npz.at("t").bytes.data() + d * 8000, 8000), 0)
          << stem << " demo " << d;
    }
  }
}

TEST(MatLasa, ListVariablesOfAngle) {
  const auto vars = list_mat_variables(lasa_mat("Angle"));
  const LasaMat m = read_lasa_mat(lasa_mat("Angle"));
  bool saw_demos = false, saw_dt = false;
  for (const auto& v : vars) {
    if (v.name == "demos") {
      saw_demos = true;
      EXPECT_EQ(v.class_name, "cell");
      EXPECT_EQ(v.dims, (std::vector<std::int64_t>{1, 7}));
      EXPECT_TRUE(v.value.bytes.empty());
    } else if (v.name == "dt") {
      saw_dt = true;
      EXPECT_EQ(v.class_name, "double");
      EXPECT_EQ(v.dims, (std::vector<std::int64_t>{1, 1}));
      EXPECT_EQ(v.value.to_double(), (std::vector<double>{m.dt}));
    }
  }
  EXPECT_TRUE(saw_demos);
  EXPECT_TRUE(saw_dt);
}

// ---------------------------------------------------------------------------------------------
// Synthetic files written with matio

TEST(MatSynthetic, TransposesTwoByTMatricesToRows) {
  const auto dir = testing::temp_dir("mat_good");
  const auto path = dir / "good.mat";
  write_lasa_like(path, {good_demo(4), good_demo(3)}, true);
  const LasaMat m = read_lasa_mat(path);
  EXPECT_EQ(m.dt, 0.01);
  ASSERT_EQ(m.demos.size(), 2u);
  // pos(r, c) = 10 r + c, so row t of the [T, 2] result is (t, 10 + t).
  EXPECT_EQ(m.demos[0].pos.shape, (std::vector<std::int64_t>{4, 2}));
  EXPECT_EQ(m.demos[0].pos.to_double(), (std::vector<double>{0, 10, 1, 11, 2, 12, 3, 13}));
  EXPECT_EQ(m.demos[0].t.to_double(), (std::vector<double>{100, 101, 102, 103}));
  EXPECT_EQ(m.demos[0].vel.to_double()[1], 210);
  EXPECT_EQ(m.demos[0].acc.to_double()[6], 303);
  EXPECT_EQ(m.demos[0].dt, 0.5);
  EXPECT_EQ(m.demos[1].pos.shape, (std::vector<std::int64_t>{3, 2}));

  // list_mat_variables gives numeric values in C order of MATLAB's dimensions.
  const double matrix[6] = {1, 4, 2, 5, 3, 6};  // [[1, 2, 3], [4, 5, 6]] column-major
  mat_t* mat = Mat_CreateVer((dir / "m.mat").c_str(), nullptr, MAT_FT_MAT5);
  matvar_t* v = double_var("m", 2, 3, matrix);
  Mat_VarWrite(mat, v, MAT_COMPRESSION_NONE);
  Mat_VarFree(v);
  Mat_Close(mat);
  const auto vars = list_mat_variables(dir / "m.mat");
  ASSERT_EQ(vars.size(), 1u);
  EXPECT_EQ(vars[0].name, "m");
  EXPECT_EQ(vars[0].dims, (std::vector<std::int64_t>{2, 3}));
  EXPECT_EQ(vars[0].value.shape, (std::vector<std::int64_t>{2, 3}));
  EXPECT_EQ(vars[0].value.to_double(), (std::vector<double>{1, 2, 3, 4, 5, 6}));
  std::filesystem::remove_all(dir);
}

TEST(MatSynthetic, MissingFieldNamesDemoAndField) {
  const auto dir = testing::temp_dir("mat_field");
  const auto path = dir / "novel.mat";
  std::vector<Field> no_vel = good_demo();
  no_vel.erase(no_vel.begin() + 2);
  write_lasa_like(path, {good_demo(), no_vel}, true);
  expect_error([&] { read_lasa_mat(path); }, {"novel.mat: demos{2} has no field 'vel'", "fields: pos, t, acc, dt"});
  std::filesystem::remove_all(dir);
}

TEST(MatSynthetic, WrongShapesAreRejected) {
  const auto dir = testing::temp_dir("mat_shape");
  const auto path = dir / "shape.mat";
  std::vector<Field> d = good_demo(4);
  d[0] = field("pos", 3, 4);
  write_lasa_like(path, {d}, true);
  expect_error([&] { read_lasa_mat(path); },
               {"shape.mat: demos{1}.pos is a 3 x 4 double", "expected a real 2 x T matrix"});
  d = good_demo(4);
  d[1] = field("t", 1, 5);
  write_lasa_like(path, {d}, true);
  expect_error([&] { read_lasa_mat(path); }, {"demos{1}.t is a 1 x 5 double", "expected a real 1 x 4 matrix"});
  d = good_demo(4);
  d[4] = field("dt", 1, 2);
  write_lasa_like(path, {d}, true);
  expect_error([&] { read_lasa_mat(path); }, {"demos{1}.dt is a 1 x 2 double", "expected a scalar"});
  std::filesystem::remove_all(dir);
}

TEST(MatSynthetic, MissingOrWrongVariables) {
  const auto dir = testing::temp_dir("mat_vars");
  write_lasa_like(dir / "nodemos.mat", {}, true);
  expect_error([&] { read_lasa_mat(dir / "nodemos.mat"); }, {"nodemos.mat: no variable 'demos' (variables: dt)"});
  write_lasa_like(dir / "nodt.mat", {good_demo()}, false);
  expect_error([&] { read_lasa_mat(dir / "nodt.mat"); }, {"nodt.mat: no variable 'dt' (variables: demos)"});

  mat_t* mat = Mat_CreateVer((dir / "notcell.mat").c_str(), nullptr, MAT_FT_MAT5);
  const double one = 1;
  matvar_t* v = double_var("demos", 1, 1, &one);
  Mat_VarWrite(mat, v, MAT_COMPRESSION_NONE);
  Mat_VarFree(v);
  Mat_Close(mat);
  expect_error([&] { read_lasa_mat(dir / "notcell.mat"); },
               {"notcell.mat: 'demos' is a 1 x 1 double, expected a 1 x n cell array of structs"});
  std::filesystem::remove_all(dir);
}

TEST(MatReject, FilesThatAreNotMatFiles) {
  const auto npy = testing::project_data() / "robot_hello_world" / "processed_demos" / "h.npy";
  expect_error([&] { read_lasa_mat(npy); }, {"h.npy"});
  const auto npz = testing::project_data() / "LASA" / "lasa_numpy" / "task_x0_y0.npz";
  expect_error([&] { read_lasa_mat(npz); }, {"task_x0_y0.npz"});
  expect_error([&] { list_mat_variables(npy); }, {"h.npy"});

  const auto dir = testing::temp_dir("mat_garbage");
  testing::put_file(dir / "empty.mat", {});
  expect_error([&] { read_lasa_mat(dir / "empty.mat"); }, {"empty.mat: empty file, not a MATLAB .mat file"});
  std::vector<std::uint8_t> garbage(4096);
  for (std::size_t i = 0; i < garbage.size(); ++i) garbage[i] = static_cast<std::uint8_t>(i * 2654435761u >> 13);
  testing::put_file(dir / "garbage.mat", garbage);
  expect_error([&] { read_lasa_mat(dir / "garbage.mat"); }, {"garbage.mat"});
  // A real MAT header followed by nothing.
  auto angle = testing::file_bytes(lasa_mat("Angle"));
  angle.resize(128);
  testing::put_file(dir / "header_only.mat", angle);
  expect_error([&] { read_lasa_mat(dir / "header_only.mat"); }, {"header_only.mat", "no variable 'demos'"});
  std::filesystem::remove_all(dir);

  expect_error<IoError>([] { read_lasa_mat("/nonexistent/stablelearn/x.mat"); }, {"/nonexistent/stablelearn/x.mat"});
}

TEST(MatReject, TruncatedLasaFileNeverCrashes) {
  // Prefixes of a real file cut before the end of its data are rejected with a DataError naming
  // the file. (Dropping only the last bytes can leave every value intact: the zlib checksum at
  // the end of a compressed variable is not needed to inflate it, and matio does not insist.)
  const auto angle = testing::file_bytes(lasa_mat("Angle"));
  const auto dir = testing::temp_dir("mat_trunc");
  int rejected = 0;
  for (const std::size_t n : {0ul, 10ul, 127ul, 128ul, 135ul, 200ul, 1000ul, 50000ul, 200000ul, angle.size() - 100}) {
    testing::put_file(dir / "t.mat", std::vector<std::uint8_t>(angle.begin(), angle.begin() + n));
    try {
      read_lasa_mat(dir / "t.mat");
    } catch (const DataError& e) {
      ++rejected;
      EXPECT_NE(std::string(e.what()).find("t.mat"), std::string::npos) << e.what();
    }
  }
  EXPECT_EQ(rejected, 10);
  // Listing the variables of a file cut in the middle of 'demos' fails the same way.
  testing::put_file(dir / "t.mat", std::vector<std::uint8_t>(angle.begin(), angle.begin() + 50000));
  expect_error([&] { list_mat_variables(dir / "t.mat"); }, {"t.mat", "truncated or corrupt"});
  std::filesystem::remove_all(dir);
}

// Inputs kept from fuzz/fuzz_mat.cpp (scripts/fuzz.sh): a LASA file whose size field asks matio
// for about 170 PB. matio's malloc fails and the reader reports a DataError naming the file; never
// a crash. (Under ASan the fuzzer had aborted on the allocation itself.)
// Two more, a cell array whose corrupt header makes matio allocate cells for about 2 s before it
// reports the corruption, and a 438-byte file that takes matio about 1 s (both libFuzzer timeouts
// under ASan on a loaded machine): rejected, in well under a minute.
TEST(MatReject, FuzzReproducersAreRejectedCleanly) {
  for (const char* name : {"mat_huge_allocation.mat", "mat_slow_corrupt_cells.mat", "mat_slow_corrupt_header.mat"}) {
    const auto file = testing::fixtures() / "fuzz" / name;
    ASSERT_TRUE(std::filesystem::exists(file));
    const auto t0 = std::chrono::steady_clock::now();
    int rejected = 0;
    try {
      read_lasa_mat(file);
    } catch (const DataError& e) {
      ++rejected;
      EXPECT_NE(std::string(e.what()).find(name), std::string::npos) << e.what();
    }
    EXPECT_EQ(rejected, 1) << name;
    try {
      (void)list_mat_variables(file);
    } catch (const DataError&) {
    }
    EXPECT_LT(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(), 30.0) << name;
  }
  // A 552-byte file whose corrupt cell header made matio calloc 13.7 GB (a libFuzzer out-of-memory
  // finding; in an ordinary run it cost about 14 s): the structural check (mat5_check.cpp) now
  // rejects it before matio allocates (its second variable claims 341 076 bytes where 365 are left).
  const auto huge = testing::fixtures() / "fuzz" / "mat_huge_cell_calloc.mat";
  const auto t0 = std::chrono::steady_clock::now();
  expect_error<DataError>([&] { read_lasa_mat(huge); }, {"mat_huge_cell_calloc.mat", "not a valid MAT-file",
                                                         "claims 341076 bytes but 365 are left"});
  EXPECT_LT(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(), 5.0);
}

/// A MAT v5 file (little-endian) from hand-made data elements: the 128-byte header, then `body`.
struct Mat5 {
  std::vector<unsigned char> bytes;
  Mat5() {
    bytes.assign(128, ' ');
    const std::string text = "MATLAB 5.0 MAT-file, hand-made by mat_test.cpp";
    std::copy(text.begin(), text.end(), bytes.begin());
    std::fill(bytes.begin() + 116, bytes.begin() + 124, 0);  // no subsystem data
    bytes[124] = 0x00;
    bytes[125] = 0x01;  // version 0x0100
    bytes[126] = 'I';
    bytes[127] = 'M';  // written little-endian
  }
  static void u32(std::vector<unsigned char>& b, std::uint32_t v) {
    for (int k = 0; k < 4; ++k) b.push_back(static_cast<unsigned char>(v >> (8 * k)));
  }
  /// An element: tag (type, nbytes) and data padded to 8 bytes; `claimed` overrides nbytes.
  static std::vector<unsigned char> element(std::uint32_t type, const std::vector<unsigned char>& data, long claimed = -1) {
    std::vector<unsigned char> b;
    u32(b, type);
    u32(b, claimed >= 0 ? static_cast<std::uint32_t>(claimed) : static_cast<std::uint32_t>(data.size()));
    b.insert(b.end(), data.begin(), data.end());
    while (b.size() % 8 != 0) b.push_back(0);
    return b;
  }
  /// An miMATRIX of class `cls` (6 double, 1 cell) named "x" with `dims`, followed by `rest`.
  static std::vector<unsigned char> matrix(std::uint32_t cls, const std::vector<std::uint32_t>& dims,
                                           const std::vector<unsigned char>& rest) {
    std::vector<unsigned char> flags, d, body;
    u32(flags, cls);
    u32(flags, 0);
    for (auto v : dims) u32(d, v);
    for (const auto& part : {element(6, flags), element(5, d), element(1, {'x'})}) body.insert(body.end(), part.begin(), part.end());
    body.insert(body.end(), rest.begin(), rest.end());
    return element(14, body);
  }
  std::filesystem::path write(const std::filesystem::path& dir, const std::string& name,
                              const std::vector<unsigned char>& body) const {
    auto all = bytes;
    all.insert(all.end(), body.begin(), body.end());
    const auto path = dir / name;
    std::ofstream(path, std::ios::binary).write(reinterpret_cast<const char*>(all.data()), static_cast<std::streamsize>(all.size()));
    return path;
  }
};

// Headers that claim more than the file holds, each rejected before matio allocates, naming what
// is wrong; the hand-made encoder itself is checked by a consistent file that matio reads.
TEST(MatReject, SizesBeyondTheFileAreRejectedBeforeReading) {
  const auto dir = testing::temp_dir("mat5_check");
  std::vector<unsigned char> one_double(8);
  const double v = 2.5;
  std::memcpy(one_double.data(), &v, 8);
  // Consistent: a 1 x 1 double matrix "x" = 2.5 (matio lists and reads it).
  const auto ok = Mat5().write(dir, "ok.mat", Mat5::matrix(6, {1, 1}, Mat5::element(9, one_double)));
  const auto vars = list_mat_variables(ok);
  ASSERT_EQ(vars.size(), 1u);
  EXPECT_EQ(vars[0].name, "x");
  EXPECT_EQ(vars[0].value.to_double(), std::vector<double>{2.5});
  // 100000 x 100000 doubles with 8 bytes of data (matio would allocate 80 GB).
  const auto big = Mat5().write(dir, "big.mat", Mat5::matrix(6, {100000, 100000}, Mat5::element(9, one_double)));
  expect_error<DataError>([&] { (void)list_mat_variables(big); },
                          {"big.mat", "an array of 10000000000 values needs 80000000000 bytes of data, but its data element holds 8"});
  // A 1 x 2^30 cell array with no cells after its name.
  const auto cells = Mat5().write(dir, "cells.mat", Mat5::matrix(1, {1, 1u << 30}, {}));
  expect_error<DataError>([&] { read_lasa_mat(cells); }, {"cells.mat", "an array of 1073741824 element(s)"});
  // An element claiming 1 GB in a file of a few hundred bytes.
  const auto claims = Mat5().write(dir, "claims.mat", Mat5::element(14, one_double, 1000000000));
  expect_error<DataError>([&] { read_lasa_mat(claims); }, {"claims.mat", "claims 1000000000 bytes but 8 are left"});
  // A compressed element that is not a zlib stream.
  const auto zlib = Mat5().write(dir, "zlib.mat", Mat5::element(15, {1, 2, 3, 4, 5, 6, 7, 8}));
  expect_error<DataError>([&] { read_lasa_mat(zlib); }, {"zlib.mat", "not a valid zlib stream"});
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace stablelearn::io
