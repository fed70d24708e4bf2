#!/usr/bin/env bash
# Installs the servers users run, for the relay tests (Debian packages; root only).
# vsftpd and ProFTPD conflict as packages: vsftpd is installed, ProFTPD is unpacked from its
# .deb into /opt/escale-test/proftpd (its libraries installed as packages). No service is
# started: a policy-rc.d refuses every start; the tests run each server on a free port.
set -uo pipefail
[ "$(id -u)" = 0 ] && command -v apt-get >/dev/null || { echo "not root with apt-get: server tests are skipped"; exit 0; }
export DEBIAN_FRONTEND=noninteractive
policy=/usr/sbin/policy-rc.d
made_policy=0
if ! [ -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod +x "$policy" && made_policy=1
fi
apt-get update -qq >/dev/null 2>&1
apt-get install -y -qq --no-install-recommends openssh-server vsftpd apache2 rclone \
    libhiredis0.14 libmemcached11 libmemcachedutil2 libpcre2-posix3 libidn2-0 libacl1 \
    >/dev/null 2>&1 || echo "some server packages could not be installed: their tests are skipped"
# The benchmarks' peers, for the benchmark smoke tests (skipped with a note when missing).
apt-get install -y -qq --no-install-recommends restic unison syncthing >/dev/null 2>&1 \
    || echo "restic, unison or syncthing could not be installed: the benchmarks skip them"
if ! [ -x /opt/escale-test/proftpd/usr/sbin/proftpd ]; then
    work=$(mktemp -d)
    if (cd "$work" && apt-get download -qq proftpd-core >/dev/null 2>&1); then
        mkdir -p /opt/escale-test/proftpd && dpkg -x "$work"/proftpd-core_*.deb /opt/escale-test/proftpd
    else
        echo "proftpd-core could not be downloaded: its tests are skipped"
    fi
    rm -rf "$work"
fi
# ProFTPD's mod_tls (ftps:// tests) is in proftpd-mod-crypto, unpacked beside it
if [ -x /opt/escale-test/proftpd/usr/sbin/proftpd ] && ! [ -e /opt/escale-test/proftpd/usr/lib/proftpd/mod_tls.so ]; then
    work=$(mktemp -d)
    if (cd "$work" && apt-get download -qq proftpd-mod-crypto >/dev/null 2>&1); then
        apt-get install -y -qq --no-install-recommends libsodium23 >/dev/null 2>&1
        dpkg -x "$work"/proftpd-mod-crypto_*.deb /opt/escale-test/proftpd
    else
        echo "proftpd-mod-crypto could not be downloaded: ProFTPD's TLS tests are skipped"
    fi
    rm -rf "$work"
fi
[ "$made_policy" = 1 ] && rm -f "$policy"
# Servers that run as root drop to this user.
id escale-test >/dev/null 2>&1 || useradd --system --no-create-home --shell /usr/sbin/nologin escale-test
# vsftpd's anonymous login (the tests' vsftpd, mapped to escale-test) changes into its home first
install -d -m 555 /home/escale-test
exit 0
