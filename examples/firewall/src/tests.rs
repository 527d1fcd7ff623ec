//! Unit tests on the fake firewall: no root, no binaries.
