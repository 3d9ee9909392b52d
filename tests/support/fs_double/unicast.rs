//! The `unicast` UDP side of the double (what a parked channel does on a real switch).
