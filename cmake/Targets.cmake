# sl_add_library(name SOURCES ... DEPS ...): one library per layer of shared/DESIGN.md.
function(sl_add_library name)
  cmake_parse_arguments(A "" "" "SOURCES;DEPS;PRIVATE_DEPS" ${ARGN})
  add_library(${name} STATIC ${A_SOURCES})
  target_include_directories(${name} PUBLIC ${PROJECT_SOURCE_DIR}/include)
  target_link_libraries(${name} PUBLIC ${A_DEPS} PRIVATE ${A_PRIVATE_DEPS})
endfunction()

# One precompiled header shared by every target that includes libtorch (shared/STYLE.md #12).
function(sl_use_torch_pch target)
  if(NOT TARGET sl_torch_pch)
    add_library(sl_torch_pch STATIC ${PROJECT_SOURCE_DIR}/src/core/pch.cpp)
    target_link_libraries(sl_torch_pch PUBLIC ${TORCH_LIBRARIES})
    target_include_directories(sl_torch_pch PUBLIC ${TORCH_INCLUDE_DIRS})
    target_precompile_headers(sl_torch_pch PRIVATE ${PROJECT_SOURCE_DIR}/include/stablelearn/core/pch.h)
  endif()
  target_precompile_headers(${target} REUSE_FROM sl_torch_pch)
endfunction()
