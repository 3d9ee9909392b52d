//! The audio fork client side of the double (what mod_audio_fork does on a real switch).
