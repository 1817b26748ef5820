# Shared by the bench scripts: `need COMMAND PACKAGE` installs PACKAGE from Debian when
# COMMAND is missing; `wait_for DESCRIPTION COMMAND...` polls COMMAND for up to 60 s.
need() {
    command -v "$1" >/dev/null && return
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$2" >/dev/null
}

wait_for() {
    local what=$1; shift
    for _ in $(seq 600); do "$@" >/dev/null 2>&1 && return 0; sleep 0.1; done
    echo "timed out waiting for $what" >&2; exit 1
}
