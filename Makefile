# Conveniences over Scripts/: `make install PREFIX=…` installs the C interface (header, libsparrow.so,
# sparrow.pc); `make check-c` runs the C tests and examples (Tests/C/run.sh).
PREFIX ?= /usr/local

.PHONY: install check-c
install:
	bash Scripts/install-lib.sh "$(PREFIX)"

check-c:
	bash Tests/C/run.sh
