#!/usr/bin/env bash
# packaging/debian/wownet.postrm: `purge` removes /var/lib/wownet and the
# bridges hostd leaves behind (wnb + 1 to 6 digits), and nothing else: not
# other bridges or links, not other state dirs; `remove` removes nothing;
# with DPKG_ROOT (dpkg --root) only the state under that root goes. Runs the
# script in a network namespace and a private mount namespace whose /var/lib
# is a tmpfs, so the host's own /var/lib and links are never touched.
#
# Needs root. Run through ctest (label netns) or directly with WOWNET_SOURCE=. .
source "$(dirname "$0")/lib.sh"
SRC=${WOWNET_SOURCE:-$(cd "$(dirname "$0")/../.." && pwd)}
POSTRM=$SRC/packaging/debian/wownet.postrm

wn_ns P purge
# hostd's leftovers, with a VIF still enslaved to one of them.
ip -n "$P" link add wnb1 type bridge
ip -n "$P" link add wnb123456 type bridge
ip -n "$P" link add vif1.0 type veth peer name vif1.0p
ip -n "$P" link set vif1.0 master wnb1
# Not hostd's: other bridges, a non-bridge with a bridge name, a TAP.
for b in br0 wnb1234567 wnbx xwnb2 wnb; do ip -n "$P" link add "$b" type bridge; done
ip -n "$P" link add wnb7 type veth peer name wnb7p
ip -n "$P" tuntap add dev wnt3 mode tap
links() { ip -n "$P" -o link show | sed -n 's/^[0-9]*: \([^:@]*\)[:@].*/\1/p' | grep -v '^lo$' | sort | tr '\n' ' '; }
all_links=$(links)

# in_root SCRIPT: runs SCRIPT (sh) in the namespace with a fresh tmpfs /var/lib
# holding wownet's state and a neighbour's; prints what is left of them.
in_root() {
  ip netns exec "$P" unshare -m --propagation private sh -c '
    set -e
    mount -t tmpfs wn-purge-test /var/lib
    mkdir -p /var/lib/wownet/sub /var/lib/wownet-agent /var/lib/other
    echo state >/var/lib/wownet/state.txt
    echo lock >/var/lib/wownet/sub/x
    echo keep >/var/lib/wownet-agent/dhclient.leases
    echo keep >/var/lib/other/file
    '"$1"'
    cd /var/lib && find . -mindepth 1 | sort | tr "\n" " "'
}

left=$(in_root "sh $POSTRM remove")
wn_eq "remove: state kept" "$left" "./other ./other/file ./wownet ./wownet-agent ./wownet-agent/dhclient.leases ./wownet/state.txt ./wownet/sub ./wownet/sub/x "
wn_eq "remove: links kept" "$(links)" "$all_links"

left=$(in_root "DPKG_ROOT=/var/lib/other sh $POSTRM purge; mkdir -p /var/lib/other/var/lib/wownet; DPKG_ROOT=/var/lib/other sh $POSTRM purge")
wn_eq "purge with DPKG_ROOT: only that root's state goes" "$left" "./other ./other/file ./other/var ./other/var/lib ./wownet ./wownet-agent ./wownet-agent/dhclient.leases ./wownet/state.txt ./wownet/sub ./wownet/sub/x "
wn_eq "purge with DPKG_ROOT: this host's links kept" "$(links)" "$all_links"

left=$(in_root "sh $POSTRM purge")
wn_eq "purge: /var/lib/wownet removed, neighbours kept" "$left" "./other ./other/file ./wownet-agent ./wownet-agent/dhclient.leases "
wn_eq "purge: only hostd's bridges removed" "$(links)" "br0 vif1.0 vif1.0p wnb wnb1234567 wnb7 wnb7p wnbx wnt3 xwnb2 "
wn_check "the VIF of a removed bridge is left, no longer a port" bash -c "! ip -n $P -o link show vif1.0 | grep -q master"
left=$(in_root "rm -rf /var/lib/wownet; sh $POSTRM purge")
wn_eq "purge again (nothing left to do) succeeds" "$left" "./other ./other/file ./wownet-agent ./wownet-agent/dhclient.leases "

wn_finish
