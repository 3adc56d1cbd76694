//! A TEK is secret until published: no silent copies, wiped when dropped,
//! never printed.

use traceless_protocol::{DiagnosisKey, Tek};
use zeroize::{Zeroize, ZeroizeOnDrop};

/// Resolves only if `T` is not `Copy`: with a `Copy` type both impls apply and
/// the call below is ambiguous, so this file does not compile.
trait AmbiguousIfCopy<A> {
    fn check() {}
}
impl<T> AmbiguousIfCopy<()> for T {}
impl<T: Copy> AmbiguousIfCopy<u8> for T {}

fn wiped_on_drop<T: ZeroizeOnDrop>() {}

#[test]
fn a_tek_is_not_copy_is_wiped_on_drop_and_is_not_printed() {
    <Tek as AmbiguousIfCopy<_>>::check();
    <DiagnosisKey as AmbiguousIfCopy<_>>::check();
    wiped_on_drop::<Tek>();
    let mut tek = Tek([0xab; 16]);
    assert_eq!(format!("{tek:?}"), "Tek(..)");
    tek.zeroize();
    assert_eq!(tek.0, [0; 16]);
}
