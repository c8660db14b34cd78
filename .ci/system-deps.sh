#!/usr/bin/env bash
# Debian packages RSPP needs: espeak-ng (text-to-speech for the voice nodes), bubblewrap
# (bwrap, the sandbox untrusted extension nodes run in) and prometheus (the metrics test
# scrapes a processor with a real server).
# Java 17 and Maven (for the local Kafka broker) are checked, and installed when missing.
set -euo pipefail
need=()
command -v espeak-ng >/dev/null 2>&1 || need+=(espeak-ng)
command -v bwrap >/dev/null 2>&1 || need+=(bubblewrap)
command -v prometheus >/dev/null 2>&1 || need+=(prometheus)
command -v java >/dev/null 2>&1 || need+=(openjdk-17-jre-headless)
command -v mvn >/dev/null 2>&1 || need+=(maven)
[ ${#need[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -ne 0 ] && ! command -v sudo >/dev/null 2>&1; then
  echo "rspp: missing system packages: ${need[*]} (install them with apt-get as root)" >&2
  exit 1
fi
SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO=sudo
echo "installing system packages: ${need[*]}"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
