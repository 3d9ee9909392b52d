//! `skype-sim`: the emulated Linux Skype client and Skype network (spec 13).
