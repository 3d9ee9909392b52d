//! Starting the emulator's binaries (`skype-sim network`, `client`, `ctl`) from tests.
