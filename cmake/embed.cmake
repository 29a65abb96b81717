# Embeds text files (Lua scripts, SQL migrations) into a generated C++ source at build time,
# so the binaries carry them and nothing is read from disk at run time.
#
# allot_embed(TARGET name NAMESPACE ns FILES a.lua b.lua) generates name.h / name.cc with
#   struct EmbeddedFile { std::string_view name; std::string_view text; };
#   std::span<const EmbeddedFile> ns::files();
function(allot_embed)
  cmake_parse_arguments(ARG "" "TARGET;NAMESPACE" "FILES" ${ARGN})
  set(out_dir ${CMAKE_CURRENT_BINARY_DIR}/embedded)
  set(header ${out_dir}/${ARG_TARGET}.h)
  set(source ${out_dir}/${ARG_TARGET}.cc)
  set(abs_files)
  foreach(f ${ARG_FILES})
    list(APPEND abs_files ${CMAKE_CURRENT_SOURCE_DIR}/${f})
  endforeach()
  # The list goes to the script comma-separated: a ';' would split the command line.
  string(REPLACE ";" "," files_arg "${abs_files}")
  add_custom_command(
    OUTPUT ${header} ${source}
    COMMAND ${CMAKE_COMMAND} -DOUT_HEADER=${header} -DOUT_SOURCE=${source}
            -DNAMESPACE=${ARG_NAMESPACE} -DTARGET=${ARG_TARGET} -DFILES=${files_arg}
            -P ${PROJECT_SOURCE_DIR}/cmake/embed_generate.cmake
    DEPENDS ${abs_files} ${PROJECT_SOURCE_DIR}/cmake/embed_generate.cmake
    COMMENT "Embedding ${ARG_TARGET}"
    VERBATIM)
  add_library(${ARG_TARGET} STATIC ${source})
  target_include_directories(${ARG_TARGET} PUBLIC ${out_dir})
endfunction()

# allot_layer_library(name) builds a static library from every .cc in the current directory
# (sub-folders excluded), or an interface library while the directory has none yet.
function(allot_layer_library name)
  file(GLOB sources CONFIGURE_DEPENDS ${CMAKE_CURRENT_SOURCE_DIR}/*.cc)
  list(FILTER sources EXCLUDE REGEX ".*_main\\.cc$")
  if(sources)
    add_library(${name} STATIC ${sources})
    set(${name}_scope PUBLIC PARENT_SCOPE)
  else()
    add_library(${name} INTERFACE)
    set(${name}_scope INTERFACE PARENT_SCOPE)
  endif()
endfunction()
