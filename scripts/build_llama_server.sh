#!/usr/bin/env bash
# Build llama.cpp's llama-server (for llm.backend: llama-server) from the llama.cpp sources
# that the installed llama-cpp-python vendors, so the server and the in-process backend run
# the same llama.cpp. Needs cmake and a C++ compiler; takes minutes (2 cores: about 10).
#
#   bash scripts/build_llama_server.sh [PREFIX=var] [BUILD=var/build/llama-server]
#
# The binary lands in PREFIX/bin/llama-server, where Bijou looks by default when data_dir is
# PREFIX. Extra CMake flags through CMAKE_ARGS, e.g. CMAKE_ARGS=-DGGML_CUDA=ON on a GPU
# machine. GGML_NATIVE=OFF keeps the binary portable across the CPUs of a cluster.
set -euo pipefail
PREFIX=$(realpath -m "${1:-var}")
BUILD=$(realpath -m "${2:-var/build/llama-server}")
PYTHON=${PYTHON:-python}
VERSION=$("$PYTHON" -c "import importlib.metadata as m; print(m.version('llama-cpp-python'))")

mkdir -p "$BUILD" "$PREFIX/bin"
SOURCE="$BUILD/llama_cpp_python-$VERSION"
if [ ! -d "$SOURCE" ]; then
  "$PYTHON" -m pip download --quiet --no-deps --no-binary :all: \
    "llama-cpp-python==$VERSION" -d "$BUILD"
  tar -xzf "$BUILD/llama_cpp_python-$VERSION.tar.gz" -C "$BUILD"
fi
# No web UI (the prebuilt one downloads at build time) and no HTTPS client: Bijou talks to
# the server on loopback.
# shellcheck disable=SC2086
cmake -S "$SOURCE/vendor/llama.cpp" -B "$BUILD/cmake" -DCMAKE_BUILD_TYPE=Release \
  -DGGML_NATIVE=OFF -DBUILD_SHARED_LIBS=OFF -DLLAMA_BUILD_SERVER=ON -DLLAMA_BUILD_TOOLS=ON \
  -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_APP=OFF \
  -DLLAMA_BUILD_UI=OFF -DLLAMA_USE_PREBUILT_UI=OFF -DLLAMA_OPENSSL=OFF \
  ${CMAKE_ARGS:-} > "$BUILD/cmake.log"
cmake --build "$BUILD/cmake" --target llama-server --parallel "$(nproc)" > "$BUILD/build.log"
install -m 755 "$BUILD/cmake/bin/llama-server" "$PREFIX/bin/llama-server"
"$PREFIX/bin/llama-server" --version 2>&1 | head -2
echo "built $PREFIX/bin/llama-server (llama.cpp of llama-cpp-python $VERSION)"
