//! The small integers the SQL schema stores for delivery states and attempt
//! triggers (see the schema's comments), each written once as a table read both
//! ways. A code no build wrote is a corrupt row, never a guess.

use crate::model::{DeliveryState, Trigger};
use crate::store::StoreError;
use crate::store::codec::CodecError;

const STATES: [(DeliveryState, i16); 5] = [
    (DeliveryState::Pending, 0),
    (DeliveryState::Succeeded, 1),
    (DeliveryState::Failed, 2),
    (DeliveryState::Exhausted, 3),
    (DeliveryState::Cancelled, 4),
];

const TRIGGERS: [(Trigger, i16); 3] = [
    (Trigger::Scheduled, 0),
    (Trigger::Manual, 1),
    (Trigger::Test, 2),
];

fn code<T: PartialEq>(table: &[(T, i16)], value: T) -> i16 {
    table
        .iter()
        .find(|(v, _)| *v == value)
        .map_or(-1, |(_, c)| *c)
}

fn value<T: Copy>(
    table: &[(T, i16)],
    code: i16,
    what: &'static str,
    sql_table: &'static str,
) -> Result<T, StoreError> {
    table
        .iter()
        .find(|(_, c)| *c == code)
        .map(|(v, _)| *v)
        .ok_or_else(|| StoreError::Corrupt {
            table: sql_table,
            source: CodecError::Invalid(format!("{what} {code}")),
        })
}

/// The stored code of a delivery state.
pub(super) fn state_code(state: DeliveryState) -> i16 {
    code(&STATES, state)
}

/// The delivery state of a stored code.
pub(super) fn state(code: i16) -> Result<DeliveryState, StoreError> {
    value(&STATES, code, "state", "deliveries")
}

/// The stored code of an attempt's trigger.
pub(super) fn trigger_code(trigger: Trigger) -> i16 {
    code(&TRIGGERS, trigger)
}

/// The trigger of a stored code.
pub(super) fn trigger(code: i16) -> Result<Trigger, StoreError> {
    value(&TRIGGERS, code, "trigger", "attempts")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_reads_back_and_unknown_codes_are_corrupt() {
        for (s, _) in STATES {
            assert_eq!(state(state_code(s)).unwrap(), s);
        }
        for (t, _) in TRIGGERS {
            assert_eq!(trigger(trigger_code(t)).unwrap(), t);
        }
        assert!(state(9).is_err());
        assert!(trigger(-1).is_err());
    }
}
