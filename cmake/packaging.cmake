# packaging.cmake - documentation install rules and the Debian packages.
#
# Split like Debian's own libuv packages (libuv1 / libuv1-dev):
#   libbytes-handoff0     (component runtime) the shared objects
#                         libbytes_handoff.so.0* and libbytes_handoff_uv.so.0*
#                         and the copyright file; named after the SOVERSION so
#                         two majors can be installed side by side
#   libbytes-handoff-dev  (component dev) headers, .so links, static archives,
#                         pkg-config and CMake files, README, guide, design,
#                         changelog, license, the examples' sources (with the
#                         tools/ sources they share) and (with
#                         BH_BUILD_DOCS) the HTML reference and man pages
# `cmake --workflow --preset deb` builds both into build/deb (cpack -G DEB);
# the ctest consumer_deb extracts them into a temporary root and builds
# consumers against it.

# Docs of the dev package: share/doc/<package> under the deb preset
# (CMAKE_INSTALL_DOCDIR), share/doc/bytes_handoff otherwise.
install(FILES README.md CHANGELOG.md LICENSE docs/guide.md docs/design.md
        DESTINATION ${CMAKE_INSTALL_DOCDIR} COMPONENT dev)
# The examples build on their own against the installed libraries; the
# sources of bh_tools they share ship next to them (examples/CMakeLists.txt).
install(DIRECTORY examples/ DESTINATION ${CMAKE_INSTALL_DOCDIR}/examples COMPONENT dev)
install(DIRECTORY tools/ DESTINATION ${CMAKE_INSTALL_DOCDIR}/tools COMPONENT dev)
# Debian wants a copyright file in each package's doc directory.
install(FILES LICENSE DESTINATION ${CMAKE_INSTALL_DATAROOTDIR}/doc/libbytes-handoff0
        RENAME copyright COMPONENT runtime)

set(CPACK_PACKAGE_NAME libbytes-handoff)
set(CPACK_PACKAGE_VENDOR "libbytes_handoff")
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "${PROJECT_DESCRIPTION}")
set(CPACK_PACKAGE_CONTACT "libbytes_handoff maintainers <maintainers@users.noreply.b-seed-389763ae.example>")
set(CPACK_RESOURCE_FILE_LICENSE ${PROJECT_SOURCE_DIR}/LICENSE)
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
set(CPACK_GENERATOR DEB)
set(CPACK_COMPONENTS_ALL runtime dev)
set(CPACK_DEB_COMPONENT_INSTALL ON)
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_RELEASE 1)
set(CPACK_DEBIAN_PACKAGE_PRIORITY optional)
set(CPACK_DEBIAN_PACKAGE_HOMEPAGE "https://github.com/")

set(CPACK_DEBIAN_RUNTIME_PACKAGE_NAME libbytes-handoff0)
set(CPACK_DEBIAN_RUNTIME_PACKAGE_SECTION libs)
set(CPACK_DEBIAN_RUNTIME_PACKAGE_SHLIBDEPS ON)
set(CPACK_DEBIAN_RUNTIME_PACKAGE_GENERATE_SHLIBS ON)
set(CPACK_DEBIAN_RUNTIME_PACKAGE_CONTROL_STRICT_PERMISSION ON)
set(CPACK_COMPONENT_RUNTIME_DESCRIPTION
    "owned byte buffers across asynchronous I/O boundaries (shared libraries)
 libbytes_handoff hands bytes read from a socket to other code as refcounted
 slices without copying them, and writes owned slices through a bounded
 queue with backpressure. This package holds the loop-free core
 (libbytes_handoff) and the libuv adapter (libbytes_handoff_uv).")

set(CPACK_DEBIAN_DEV_PACKAGE_NAME libbytes-handoff-dev)
set(CPACK_DEBIAN_DEV_PACKAGE_SECTION libdevel)
set(CPACK_DEBIAN_DEV_PACKAGE_DEPENDS
    "libbytes-handoff0 (= ${PROJECT_VERSION}-1), libuv1-dev")
set(CPACK_COMPONENT_DEV_DESCRIPTION
    "owned byte buffers across asynchronous I/O boundaries (development files)
 Headers, static libraries, pkg-config and CMake package files of
 libbytes_handoff and libbytes_handoff_uv, with the user guide, the design
 notes, the changelog and the examples' sources.")

include(CPack)
