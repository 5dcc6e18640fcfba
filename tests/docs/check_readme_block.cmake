# Fails unless the ```cpp block between <!-- quickstart:begin --> and <!-- quickstart:end --> in README
# equals SOURCE byte for byte.
include(${CMAKE_CURRENT_LIST_DIR}/marked_block.cmake)
read_marked_block("${README}" quickstart block)
file(READ "${SOURCE}" source)
string(REGEX REPLACE "^<!-- quickstart:begin -->\n```cpp\n" "" block "${block}")
string(REGEX REPLACE "```\n$" "" block "${block}")
if(NOT block STREQUAL source)
  message(FATAL_ERROR "README.md's usage example differs from ${SOURCE}: copy the file into the README block")
endif()
message(STATUS "README usage example matches ${SOURCE}")
