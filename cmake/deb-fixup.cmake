# deb-fixup.cmake - CPack post-build script (CPACK_POST_BUILD_SCRIPTS,
# cmake/packaging.cmake): two things CPack's DEB generator (CMake 3.25)
# cannot be told, done on the built packages with dpkg-deb.
#  1. It gives every package with a shared library under /usr/lib a
#     postinst and a postrm that run ldconfig, with no switch to turn that
#     off; lintian flags them (maintscript-calls-ldconfig). The runtime
#     package's `activate-noawait ldconfig` trigger already has dpkg run
#     ldconfig once per transaction, so they are taken out (only when they
#     are exactly CPack's ldconfig stanza).
#  2. It has no Multi-Arch field: CPACK_DEBIAN_<COMPONENT>_PACKAGE_MULTIARCH
#     is written into the control file here (unless a newer CPack did).
# A changed package is rebuilt with dpkg-deb, files owned by root.
find_program(BH_DPKG_DEB dpkg-deb REQUIRED)
foreach(comp IN LISTS CPACK_COMPONENTS_ALL)
    string(TOUPPER ${comp} COMP)
    if(CPACK_DEBIAN_${COMP}_PACKAGE_MULTIARCH)
        set(multiarch_${CPACK_DEBIAN_${COMP}_PACKAGE_NAME} ${CPACK_DEBIAN_${COMP}_PACKAGE_MULTIARCH})
    endif()
endforeach()
foreach(deb IN LISTS CPACK_PACKAGE_FILES)
    if(NOT deb MATCHES "\\.deb$")
        continue()
    endif()
    set(dir ${deb}.unpacked)
    file(REMOVE_RECURSE ${dir})
    execute_process(COMMAND ${BH_DPKG_DEB} -R ${deb} ${dir} COMMAND_ERROR_IS_FATAL ANY)
    set(changed FALSE)
    foreach(script postinst postrm)
        set(path ${dir}/DEBIAN/${script})
        if(EXISTS ${path})
            file(READ ${path} text)
            string(REGEX REPLACE "[ \t\n]+" " " flat "${text}")
            if(flat MATCHES "^#!/bin/sh set -e if \\[ \"\\$1\" = \"(configure|remove)\" \\]; then ldconfig fi ?$")
                file(REMOVE ${path})
                set(changed TRUE)
            else()
                message(FATAL_ERROR "${deb}: unexpected ${script}:\n${text}")
            endif()
        endif()
    endforeach()
    file(READ ${dir}/DEBIAN/control control)
    string(REGEX MATCH "(^|\n)Package: ([^\n]+)" _ "${control}")
    set(pkg ${CMAKE_MATCH_2})
    if(multiarch_${pkg} AND NOT control MATCHES "(^|\n)Multi-Arch:")
        string(STRIP "${control}" control)
        file(WRITE ${dir}/DEBIAN/control "${control}\nMulti-Arch: ${multiarch_${pkg}}\n")
        set(changed TRUE)
    endif()
    if(changed)
        execute_process(COMMAND ${BH_DPKG_DEB} --root-owner-group -Zxz -b ${dir} ${deb}
                        OUTPUT_QUIET COMMAND_ERROR_IS_FATAL ANY)
    endif()
    file(REMOVE_RECURSE ${dir})
endforeach()
