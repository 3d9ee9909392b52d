//! `sk list` and `sk list full`: the table in the original module's layout (spec 9.1).

use super::Registry;
use std::fmt::Write as _;

impl Registry {
    /// `sk list` / `sk list full`, in the original module's layout (spec 9.1). The totals line
    /// counts the configured interfaces (the original printed highest slot + 1 - 1).
    pub fn render_list(&self, full: bool) -> String {
        let inner = self.lock();
        let mut out = String::new();
        out.push_str("F ID\t    Name    \tIB (F/T)    OB (F/T)\tState\tCallFlw\t\tUUID\n");
        out.push_str("= ====\t  ========  \t=======     =======\t======\t============\t======\n");
        let (mut ib, mut ib_failed, mut ob, mut ob_failed, mut count) = (0, 0, 0, 0, 0);
        // `full` shows the raw pointer, as the original did. It may rest on an empty slot
        // (slot 0 is never configured), which the short list does not show: there the star
        // goes to the interface the next hunt starts at.
        let slots = inner.slots.len();
        let starts_at = if full {
            Some(inner.next % slots)
        } else {
            (0..slots)
                .map(|step| (inner.next + step) % slots)
                .find(|index| inner.slots[*index].is_some())
        };
        for (index, slot) in inner.slots.iter().enumerate() {
            let flag = if Some(index) == starts_at { '*' } else { ' ' };
            match slot {
                Some(s) => {
                    count += 1;
                    ib += s.ib_calls;
                    ib_failed += s.ib_failed;
                    ob += s.ob_calls;
                    ob_failed += s.ob_failed;
                    let _ = writeln!(
                        out,
                        "{flag} {index}\t[{:>6}]\t{:>3}/{}\t{:>6}/{}\t{}\t{}\t{}",
                        s.name,
                        s.ib_failed,
                        s.ib_calls,
                        s.ob_failed,
                        s.ob_calls,
                        s.state.label(),
                        s.callflow.label(),
                        s.uuid
                    );
                }
                None if full => {
                    let _ = writeln!(out, "{flag} {index}");
                }
                None => {}
            }
        }
        let _ = writeln!(
            out,
            "\nTotal Interfaces: {count}  IB Calls(Failed/Total): {ib_failed}/{ib}  OB Calls(Failed/Total): {ob_failed}/{ob}"
        );
        out
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{iface, registry};
    use super::super::{CallFlow, Direction, IfaceState, Registry};

    #[test]
    fn list_layout_matches_the_original() {
        let r = registry(2);
        r.count_call(1, Direction::Inbound);
        r.count_call(1, Direction::Inbound);
        r.count_failure(1, Direction::Inbound);
        r.count_call(2, Direction::Outbound);
        r.set_state(2, IfaceState::Up);
        r.set_callflow(2, CallFlow::InProgress);
        r.set_uuid(2, "6f1c");
        let hunt = r.hunt(None).unwrap(); // moves the star to slot 2
        drop(hunt);
        let text = r.render_list(false);
        let expected = "F ID\t    Name    \tIB (F/T)    OB (F/T)\tState\tCallFlw\t\tUUID\n\
                        = ====\t  ========  \t=======     =======\t======\t============\t======\n  \
                        1\t[interface1]\t  1/2\t     0/0\tIDLE\tIDLE\t\n\
                        * 2\t[interface2]\t  0/0\t     0/1\tUP\tINPROGRS\t6f1c\n\
                        \nTotal Interfaces: 2  IB Calls(Failed/Total): 1/2  OB Calls(Failed/Total): 0/1\n";
        assert_eq!(text, expected);
        let full = r.render_list(true);
        assert!(full.contains("\n  0\n"), "{full}");
        assert!(full.contains("\n  63\n"), "{full}");
    }

    #[test]
    fn short_names_are_right_aligned_to_six() {
        let r = Registry::new();
        r.upsert(&iface(1, "a1", "u"));
        assert!(r.render_list(false).contains("[    a1]"));
    }
}
