SHELL := /bin/bash
# Build, run and test the proxy with nothing but a JDK (21 or newer) and make.
#
#   make        compile src/ into out/
#   make run    run the proxy with conf/proxy.properties
#   make demo   a built-in "Hello" backend on 127.0.0.1:5000 plus the proxy on :8080
#   make test   fetch JUnit once (Maven), compile and run every test
#   make bench  this proxy against nginx and HAProxy, side by side (needs nginx and wrk;
#               HAProxy if installed). QUICK=1 make bench: a short run while developing
#   make image  out/image/: a runtime of java.base alone (jlink) holding out/image/proxy.jar;
#               run it with out/image/bin/java -cp out/image/proxy.jar Proxy FILE
#   make image-root  out/image-root/: that runtime, the C libraries it needs and a default
#               configuration, as the root of the container conf/Containerfile builds

# --- find a JDK >= 21: $JAVA_HOME, then javac on PATH, then the newest in /usr/lib/jvm ---
define jdk_functions
ver() { [ -x "$$1/bin/javac" ] && "$$1/bin/javac" -version 2>&1 | sed -nE 's/^javac ([0-9]+).*/\1/p'; }; \
ok() { [ "$$(ver "$$1")" -ge 21 ] 2>/dev/null; }; \
on_path=$$(dirname "$$(dirname "$$(readlink -f "$$(command -v javac)" 2>/dev/null)")")
endef
define find_jdk
$(jdk_functions); \
if [ -n "$$JAVA_HOME" ] && ok "$$JAVA_HOME"; then echo "$$JAVA_HOME"; \
elif ok "$$on_path"; then echo "$$on_path"; \
else best=; for h in /usr/lib/jvm/*; do \
    if ok "$$h" && { [ -z "$$best" ] || [ "$$(ver "$$h")" -gt "$$(ver "$$best")" ]; }; then best=$$h; fi; \
  done; echo "$$best"; fi
endef
JDK := $(shell $(find_jdk))
JAVA  = $(JDK)/bin/java
JAVAC = $(JDK)/bin/javac

# The JVM options that `make run` and `make demo` use, and that `make bench` measures:
#   -XX:+UseSerialGC    one GC thread, no concurrent collector taking a core from I/O on a
#                       small box; the garbage is short-lived request state. (G1, measured
#                       too: 182 MiB of RSS with 10,000 idle connections where Serial takes 88.)
#   -Xmn16m -XX:SurvivorRatio=4
#                       a small young generation, fixed: the memory it touches stays
#                       resident, and connections, not eden, should decide the RSS. 16 MiB,
#                       with survivor spaces (a sixth each) large enough for the state of
#                       1000 requests in flight: with 8 MiB that state outgrew its survivor
#                       space and went to the old generation, 25 MiB a second at 1000
#                       connections (2 MiB with 16). Fixed, because Serial sizes its young
#                       generation again only after a full collection: with -XX:NewSize=8m
#                       -XX:MaxNewSize=16m it stayed at 8 MiB until then, and 16 from the
#                       start gives 1.04-1.11x the requests/s at 1000 connections and
#                       1.01-1.08x at 64 (each on either port in turn). (Connections that
#                       come and go still fill the old generation in time: up to the heap's
#                       bound below, then a full collection.)
#   -XX:MaxRAMPercentage=2
#                       the heap: on a big host 2 % of its memory, at least 124 MiB (484 MiB on
#                       24 GiB); in a small container half of it (64 MiB of 128 MB), as the
#                       JVM's rule for small memory goes. Serial grows its old generation with
#                       every promotion until the heap is full, so it needs a bound (without
#                       one: 2.8 GB after the benchmark's load here), but a fixed -Xmx could be
#                       more than a small container has. buffer_memory follows the heap. (Less
#                       than half is not enough: with 42 %, the 128 MB run's 1,500 stalled
#                       uploads, two threads each, and 10,000 idle connections run out of heap.)
#   -XX:+UseCompactObjectHeaders -XX:TrimNativeHeapInterval=1000     (JDK 25 and newer)
#                       8-byte object headers, 10 % less heap for the same connections; and
#                       memory the JIT compiler used and freed goes back to the system within
#                       a second instead of staying resident.
#   -XX:+AutoCreateSharedArchive -XX:SharedArchiveFile=out/proxy.jsa
#                       class-data sharing: the first run writes the archive of our classes
#                       (at exit), later runs map it and start faster. It needs a jar on the
#                       class path, hence out/proxy.jar. -Xlog:cds=off keeps it quiet.
# With less than 512 MB, make run uses SMALL_JVM_OPTS (below) instead: the same but for
# the young generation's size and the JIT.
JDK_VERSION := $(shell [ -n "$(JDK)" ] && $(JAVAC) -version 2>&1 | sed -nE 's/^javac ([0-9]+).*/\1/p')
JDK25_OPTS := $(if $(shell [ "$(JDK_VERSION)" -ge 25 ] 2>/dev/null && echo y),-XX:+UseCompactObjectHeaders -XX:TrimNativeHeapInterval=1000)
gc_opts = -XX:+UseSerialGC -Xmn$(1) -XX:SurvivorRatio=4 -XX:MaxRAMPercentage=2 $(JDK25_OPTS)
SERVER_OPTS = $(call gc_opts,16m)
CDS_OPTS = -XX:+AutoCreateSharedArchive -XX:SharedArchiveFile=out/proxy.jsa -Xlog:cds=off -Xlog:cds+dynamic=off

# A small container, under 512 MB (the image's options, and make run's there): a young
# generation of 8 MiB, where the old generation needs the room (in 128 MB the heap is
# 64 MiB, and the 128 MB run's state 37-45 MiB of it: a 16 MiB young generation, or one
# that may grow to 16, leaves the old 48 MiB, and such runs went into hundreds of full
# collections or out of heap), and the JIT's first tier only (C1). The second (C2)
# compiles the hot request path with up to 37 MiB of working memory per method, in a
# 128 MB container the difference between living and being killed by the kernel under
# the 128 MB run's load (bench.sh); it costs some of the peak request rate (README,
# Performance).
SMALL_JVM_OPTS = $(call gc_opts,8m) -XX:TieredStopAtLevel=1

# The memory the JVM will size itself from: a container's limit (cgroup v2 or v1: make's
# own cgroup, else the root's), else the machine's, in MB; `make run MEMORY_MB=N` says it
# instead. make run's options for N:
MEMORY_MB ?= $(shell total=$$(awk '/^MemTotal:/ { print int($$2 / 1024) }' /proc/meminfo 2>/dev/null); \
  v2=$$(sed -n 's/^0:://p' /proc/self/cgroup 2>/dev/null); v1=$$(sed -n 's/^[0-9]*:memory://p' /proc/self/cgroup 2>/dev/null); \
  limit=$$(cat /sys/fs/cgroup$$v2/memory.max /sys/fs/cgroup/memory$$v1/memory.limit_in_bytes \
    /sys/fs/cgroup/memory.max /sys/fs/cgroup/memory/memory.limit_in_bytes 2>/dev/null | head -n 1); \
  case $$limit in (""|max|*[!0-9]*) echo "$${total:-1024}" ;; \
  (*) limit=$$((limit / 1048576)); [ -n "$$total" ] && [ "$$total" -lt "$$limit" ] && limit=$$total; echo "$$limit" ;; esac)
run_opts = $(if $(shell [ "$(1)" -lt 512 ] 2>/dev/null && echo y),$(SMALL_JVM_OPTS),$(SERVER_OPTS)) $(CDS_OPTS)
JVM_OPTS ?= $(call run_opts,$(MEMORY_MB))

JUNIT_VERSION = 6.0.1
JUNIT = lib/junit-platform-console-standalone-$(JUNIT_VERSION).jar

SRC  = $(wildcard src/*.java)
TEST = $(wildcard test/*.java)

.PHONY: all jdk run demo image image-root test bench clean FORCE

all: out/.built

jdk:
	@if [ -z "$(JDK)" ]; then $(jdk_functions); found=""; \
	  for h in "$$JAVA_HOME" "$$on_path" /usr/lib/jvm/*; do [ -n "$$h" ] && [ -x "$$h/bin/javac" ] && found="$$found $$h (javac $$(ver "$$h"))"; done; \
	  echo "make: needs a JDK 21 or newer (for virtual threads) and found none; looked at JAVA_HOME, javac on PATH, /usr/lib/jvm/*; found:$${found:- no javac at all}. Install one (apt-get install openjdk-21-jdk-headless) or set JAVA_HOME." >&2; exit 1; fi

out/.built: $(SRC) Makefile | jdk
	@mkdir -p out
	$(JAVAC) --release 21 -Xlint:all,-serial -Werror -d out $(SRC)
	@cd out && $(JDK)/bin/jar --create --file proxy.jar *.class && rm -f proxy.jsa
	@touch $@
	@v=$$(java -version 2>&1 | sed -nE '1s/.*version "([0-9]+).*/\1/p'); \
	  if [ -z "$$v" ] || [ "$$v" -lt 21 ]; then \
	    echo "make: the java on your PATH is $${v:+version }$${v:-missing}, older than the 21 the proxy needs; run it with:"; \
	    echo "  $(JAVA) -cp out Proxy conf/proxy.properties     (or: make run)"; fi

run: all
	$(JAVA) $(JVM_OPTS) -cp out/proxy.jar Proxy conf/proxy.properties

demo: all
	@echo "demo: Hello backend on 127.0.0.1:5000, proxy on :8080. Try: curl localhost:8080/  (Ctrl-C stops both)"
	@$(JAVA) -cp out Hello 127.0.0.1:5000 & backend=$$!; trap 'kill $$backend 2>/dev/null' EXIT INT TERM; \
	  $(JAVA) $(JVM_OPTS) -cp out/proxy.jar Proxy conf/proxy.properties

# --- make image: the proxy and a runtime of its own, nothing else needed on the host ---
# jlink links java.base alone (the proxy needs no other module), without debug data,
# headers or man pages, its class files compressed: about 42 MB with JDK 25, where the
# whole JDK is 300. Without the JDK's 15 MB class-data sharing archive too (jlink's
# --generate-cds-archive would add it back): it would take the runtime over 45 MB, and
# without it the proxy answers its first request as soon (0.3-0.5 s after start here,
# with the JDK's archive or without). A JDK before 24 links from its
# jmods/ directory (Debian: apt-get install openjdk-21-jmods); from 24 on, a JDK built with
# "Linking from run-time image" (jlink --help says so) needs none.
JLINK_OPTS = --add-modules java.base --strip-debug --no-header-files --no-man-pages --compress=zip-9

out/image/release: Makefile | jdk
	@rm -rf out/image
	@echo "jlink $(JLINK_OPTS) --output out/image"
	@$(JDK)/bin/jlink $(JLINK_OPTS) --output out/image || { \
	  echo "make: jlink failed; a JDK before 24 links from its jmods/ directory (Debian: apt-get install openjdk-21-jmods)" >&2; exit 1; }

# With it, the JVM options for this JDK, as argument files (java @FILE): server.options
# (make run's, for the systemd unit) and small.options (SMALL_JVM_OPTS, for the container).
out/image/proxy.jar: out/.built out/image/release
	cp out/proxy.jar $@
	echo '$(SERVER_OPTS)' > out/image/server.options
	echo '$(SMALL_JVM_OPTS)' > out/image/small.options

image: out/image/proxy.jar
	@echo "out/image: $$(du -sh out/image | cut -f1)  (run: out/image/bin/java -cp out/image/proxy.jar Proxy FILE)"

# --- make image-root: the root file system of the container, for conf/Containerfile ---
# The runtime in /opt/proxy, conf/container.properties as /etc/proxy/proxy.properties, an
# empty /tmp for the JVM, an empty /proc where the container's is mounted, and the C
# libraries the runtime's programs and libraries are linked with, each copied to the path
# ldd finds it at (the dynamic loader included), so that an image FROM scratch runs. The
# runtime's own libraries come along in /opt/proxy.
out/.image-root: out/image/proxy.jar conf/container.properties Makefile
	@rm -rf out/image-root && mkdir -p out/image-root/{opt,etc/proxy,tmp,proc}
	cp -a out/image out/image-root/opt/proxy
	cp conf/container.properties out/image-root/etc/proxy/proxy.properties
	@chmod 1777 out/image-root/tmp
	@set -o pipefail; ldd out/image/bin/java out/image/lib/*.so out/image/lib/server/*.so \
	  | sed -nE 's/^[[:space:]]*([^ ]+ => )?(\/[^ ]+) \(0x[0-9a-f]+\)$$/\2/p' | grep -v '/out/image/' | sort -u \
	  | while read -r lib; do mkdir -p "out/image-root$$(dirname "$$lib")"; cp -L "$$lib" "out/image-root$$lib"; echo "  + $$lib"; done
	@touch $@

image-root: out/.image-root
	@echo "out/image-root: $$(du -sh out/image-root | cut -f1)  (then: podman build -f conf/Containerfile -t proxy out/image-root)"

$(JUNIT):
	@mkdir -p lib
	mvn -q dependency:copy -Dartifact=org.junit.platform:junit-platform-console-standalone:$(JUNIT_VERSION) -DoutputDirectory=lib

# The list of test sources, rewritten only when a file is added or removed, so that a
# deleted test makes the tests compile again (its stale class must not go on running).
out-test/sources: FORCE
	@mkdir -p out-test; echo '$(TEST)' | cmp -s - $@ || echo '$(TEST)' > $@

# Tests compile together into a directory emptied of classes first: a class whose source
# is gone is never run. Nothing is compiled when no test source and no src/ file changed.
out-test/.built: $(TEST) out-test/sources out/.built $(JUNIT)
	@mkdir -p out-test && find out-test -name '*.class' -delete
	$(JAVAC) --release 21 -Xlint:all,-serial -cp out:$(JUNIT) -d out-test $(TEST)
	@touch $@

# Runs every test, then prints one plain line "N passed, M failed" from the launcher's
# counts. "Failed" counts what JUnit reports as failed or aborted: failed tests, failed
# containers (a class that can't initialise, a broken @MethodSource: its tests never ran,
# so they are in neither count), and aborted tests (a failed assumption). A test that is
# meant to be skipped on some machines says so with a condition (@EnabledIf): "skipped",
# listed on its own line. A run that ends badly with nothing counted as failed (the
# launcher itself failed) counts as one failure, so the line never reads "0 failed" then.
test: out-test/.built
	@set -o pipefail; $(JAVA) -jar $(JUNIT) execute --class-path out:out-test --scan-class-path \
	  --disable-banner --disable-ansi-colors --details=tree --details-theme=ascii 2>&1 | tee out-test/report.txt; status=$$?; \
	count() { n=$$(sed -nE "s/^\[ *([0-9]+) $$1 *\]$$/\1/p" out-test/report.txt | tail -n 1); echo $${n:-0}; }; \
	passed=$$(count 'tests successful'); \
	failed=$$(( $$(count 'tests failed') + $$(count 'tests aborted') + $$(count 'containers failed') )); \
	skipped=$$(( $$(count 'tests skipped') + $$(count 'containers skipped') )); \
	if [ $$status -ne 0 ] && [ $$failed -eq 0 ]; then failed=1; fi; \
	if [ $$skipped -gt 0 ]; then echo "$$skipped skipped (a condition said so: see the tree above)"; fi; \
	echo "$$passed passed, $$failed failed"; \
	[ $$failed -eq 0 ] && [ $$passed -gt 0 ]

bench: all
	JAVA="$(JAVA)" JVM_OPTS="$(JVM_OPTS)" SMALL_JVM_OPTS="$(SMALL_JVM_OPTS)" \
	  JVM_OPTS_128M="$(call run_opts,128)" bash test/bench/bench.sh

clean:
	rm -rf out out-test
