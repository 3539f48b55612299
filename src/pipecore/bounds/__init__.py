"""Certified lower bounds (DESIGN.md section 3): combinatorial bounds, MIP relaxations on
HiGHS / Gurobi, and the certificate step of ``solve()`` (:mod:`.certificate`)."""
from .certificate import CERT_TOLERANCE, Certificate, certify, mip_bounds, quick_bound, safe_floor
from .combinatorial import CombinatorialBound, combinatorial_bound

__all__ = ["certify", "quick_bound", "mip_bounds", "safe_floor", "Certificate",
           "combinatorial_bound", "CombinatorialBound", "CERT_TOLERANCE"]
