//! Indices into the programs' array maps, handed out and taken back.

/// A pool of array indices from `first` up to (not including) `end`.
#[derive(Debug)]
pub(crate) struct Slots {
    free: Vec<u32>,
    next: u32,
    end: u32,
}

impl Slots {
    /// Indices `first..end`.
    pub(crate) fn new(first: u32, end: u32) -> Slots {
        Slots {
            free: Vec::new(),
            next: first,
            end,
        }
    }

    /// A free index, or `None` when all are taken. One given back is used
    /// again first, which keeps the indices in use low.
    pub(crate) fn take(&mut self) -> Option<u32> {
        if let Some(slot) = self.free.pop() {
            return Some(slot);
        }
        (self.next < self.end).then(|| {
            self.next += 1;
            self.next - 1
        })
    }

    /// Gives `slot` back.
    pub(crate) fn give(&mut self, slot: u32) {
        self.free.push(slot);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn indices_are_unique_until_given_back_and_run_out() {
        let mut slots = Slots::new(1, 4);
        assert_eq!(
            (slots.take(), slots.take(), slots.take()),
            (Some(1), Some(2), Some(3))
        );
        assert_eq!(slots.take(), None);
        slots.give(2);
        assert_eq!(slots.take(), Some(2));
        assert_eq!(slots.take(), None);
    }
}
