//! Unit tests on the fake firewalls and the fake network: no root, no binaries.
