#!/usr/bin/env bash
# test_migration.sh on two rendezvous sharing one registry in etcd (host A
# at one, host B at the other, host C at both): see its header.
MIGRATION_SHARED=1 exec bash "$(dirname "$0")/test_migration.sh"
