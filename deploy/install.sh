#!/usr/bin/env bash
# Installs lmtphook as a service next to Postfix: the binary, a system user, the configuration
# directory (example config, templates, secrets file), the spool, the socket directory inside
# Postfix's queue directory, and the hardened systemd unit. Safe to run again (keeps an existing
# configuration). Needs root unless --destdir is given.
#
#   deploy/install.sh                        # build (release) and install under /usr/local
#   deploy/install.sh --binary PATH          # install a binary built elsewhere
#   deploy/install.sh --destdir /tmp/stage   # stage into a directory (packaging, tests): no user, no systemctl
set -euo pipefail
cd "$(dirname "$0")/.."
prefix=/usr/local destdir="" binary="" create_user=1
while [[ $# -gt 0 ]]; do
    case $1 in
        --prefix) prefix=$2; shift 2 ;;
        --destdir) destdir=$2; create_user=0; shift 2 ;;
        --binary) binary=$2; shift 2 ;;
        --no-user) create_user=0; shift ;;
        -h|--help) sed -n '2,12p' "$0"; exit 0 ;;
        *) echo "install: unknown option $1" >&2; exit 64 ;;
    esac
done
if [[ -z $destdir && $(id -u) != 0 ]]; then echo "install: run as root (or give --destdir)" >&2; exit 1; fi
if [[ -z $binary ]]; then
    swift build -c release --product lmtphook --static-swift-stdlib
    binary="$(swift build -c release --show-bin-path)/lmtphook"
fi
[[ -x $binary ]] || { echo "install: no executable at $binary" >&2; exit 1; }

owner() { [[ -z $destdir ]] && echo "-o $1 -g $2" || true; }
if [[ $create_user == 1 ]] && ! id lmtphook >/dev/null 2>&1; then
    useradd --system --home-dir /var/lib/lmtphook --no-create-home --shell /usr/sbin/nologin lmtphook
    echo "install: created system user lmtphook"
fi
postfix_group=postfix
getent group postfix >/dev/null 2>&1 || postfix_group=lmtphook

install -d "$destdir$prefix/bin"
install -m 0755 "$binary" "$destdir$prefix/bin/lmtphook"
install -d "$destdir$prefix/share/man/man8"
install -m 0644 deploy/man/lmtphook.8 "$destdir$prefix/share/man/man8/lmtphook.8"
# shellcheck disable=SC2046
install -d -m 0750 $(owner root lmtphook) "$destdir/etc/lmtphook" "$destdir/etc/lmtphook/templates"
install -m 0644 deploy/templates/*.mustache "$destdir/etc/lmtphook/templates/"
install -m 0644 deploy/lmtphook.example.yaml "$destdir/etc/lmtphook/lmtphook.example.yaml"
if [[ ! -e $destdir/etc/lmtphook/lmtphook.yaml ]]; then
    # shellcheck disable=SC2046
    install -m 0640 $(owner root lmtphook) deploy/lmtphook.example.yaml "$destdir/etc/lmtphook/lmtphook.yaml"
    echo "install: wrote /etc/lmtphook/lmtphook.yaml (the example: edit it, then lmtphook check-config)"
fi
if [[ ! -e $destdir/etc/lmtphook/secrets.env ]]; then
    printf '# Secrets for {env: NAME} in lmtphook.yaml, one NAME=value per line (read by systemd).\n' > "$destdir/etc/lmtphook/secrets.env"
    chmod 0640 "$destdir/etc/lmtphook/secrets.env"
    [[ -z $destdir ]] && chown root:lmtphook "$destdir/etc/lmtphook/secrets.env"
fi
# shellcheck disable=SC2046
install -d -m 0750 $(owner lmtphook lmtphook) "$destdir/var/lib/lmtphook" "$destdir/var/lib/lmtphook/spool"
# The socket directory inside Postfix's queue directory: setgid group postfix, so the socket is too.
# shellcheck disable=SC2046
install -d -m 2750 $(owner lmtphook "$postfix_group") "$destdir/var/spool/postfix/lmtphook"
install -d "$destdir/etc/systemd/system"
sed "s|/usr/local/bin/lmtphook|$prefix/bin/lmtphook|g" deploy/systemd/lmtphook.service > "$destdir/etc/systemd/system/lmtphook.service"
chmod 0644 "$destdir/etc/systemd/system/lmtphook.service"
if [[ -z $destdir ]] && command -v systemctl >/dev/null && systemctl daemon-reload 2>/dev/null; then
    echo "install: systemd unit installed (systemctl enable --now lmtphook)"
fi
cat <<TXT
install: done.
  1. edit /etc/lmtphook/lmtphook.yaml (secrets in /etc/lmtphook/secrets.env), then: lmtphook check-config /etc/lmtphook/lmtphook.yaml
  2. add deploy/postfix/main.cf and deploy/postfix/master.cf to Postfix's, then: postfix check && postfix reload
  3. systemctl enable --now lmtphook; lmtphook send-test --socket /var/spool/postfix/lmtphook/lmtp.sock --to you@example.com
TXT
