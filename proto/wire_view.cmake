# Writes the decoder's view of the event contract: OUT is IN with every string field declared as
# bytes. The wire encoding of the two is the same; protobuf-c hands a string over as a C string
# (cut at the first NUL, its UTF-8 unchecked) but bytes with their length, and the decoder needs
# the length to refuse what JSON refuses (a NUL in an id, invalid UTF-8) instead of reading
# another value. Usage: cmake -DIN=... -DOUT=... -P wire_view.cmake
file(READ "${IN}" text)
string(REGEX REPLACE "(optional|repeated)( +)string " "\\1\\2bytes  " text "${text}")
string(REGEX REPLACE "\n( +)string ([a-z_]+ = [0-9]+;)" "\n\\1bytes  \\2" text "${text}")
if(text MATCHES "[ <]string[ ,>]")
  message(FATAL_ERROR "wire_view.cmake: ${IN} declares a string this script does not turn into bytes")
endif()
file(WRITE "${OUT}" "${text}")
