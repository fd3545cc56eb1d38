# Every dependency comes from a Debian 12 package (scripts/setup.sh installs them).
find_package(PkgConfig REQUIRED)
find_package(ZLIB REQUIRED)                               # zlib1g-dev: IDX .gz
# libzip-dev: .npz (pkg-config: its CMake package wants /usr/bin/zipcmp, which Debian ships apart)
pkg_check_modules(LIBZIP REQUIRED IMPORTED_TARGET libzip)
pkg_check_modules(MATIO REQUIRED IMPORTED_TARGET matio)   # libmatio-dev: LASA .mat
find_package(nlohmann_json 3.10 REQUIRED)                 # nlohmann-json3-dev
find_package(fmt REQUIRED)                                # libfmt-dev
if(NOT SL_FUZZ_ONLY)
  find_package(Torch REQUIRED)                            # libtorch-dev (CPU, 1.13.1)
  find_package(CLI11 REQUIRED)                            # libcli11-dev
  find_package(tomlplusplus REQUIRED)                     # libtomlplusplus-dev
  if(SL_BUILD_TESTS)
    find_package(GTest REQUIRED)
  endif()
  if(SL_BUILD_BENCH)
    find_package(benchmark REQUIRED)
  endif()
endif()
