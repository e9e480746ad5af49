"""Orders, refunds, points, redemptions, adjustments, coupons and tiers."""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated

from fastapi import APIRouter, Path, Query, Response

from api.deps import AdminCaller, CorrectionCaller, MemberDataCaller, NowDep, SalesCaller, SessionDep
from api.schemas.common import ERROR_RESPONSES, MemberId, from_row
from api.schemas.points import (
    AdjustmentIn,
    CouponActionOut,
    CouponOut,
    CouponRedemptionIn,
    CouponVoidIn,
    LedgerEntryOut,
    LedgerPage,
    OrderIn,
    OrderOut,
    TierOut,
)
from domain.members.service import get_member
from domain.orders import service as orders
from domain.organisations import service as organisations
from domain.points import service as points
from domain.rebates import service as rebates
from domain.tiers import service as tiers

router = APIRouter(tags=["points"], responses=ERROR_RESPONSES)


# POST /v1/orders, its refunds, POST /v1/members/{member_id}/redemptions and GET /v1/members/{member_id}/points
# are hot routes: api/hot.py.


@router.post("/v1/admin/orders", response_model=OrderOut, status_code=201,
             summary="Import a past order (operators): no back-dating window; points are dated by the order")
def import_order(body: OrderIn, response: Response, session: SessionDep, caller: AdminCaller,
                 now: NowDep) -> OrderOut:
    order, replayed = orders.record_order(session, new=orders.NewOrder(
        order_id=body.order_id, member_id=body.member_id, amount_fen=body.amount_fen, channel=body.channel,
        occurred_at=body.occurred_at, items=body.items, sent_by=caller.namespace), now=now, imported=True)
    if replayed:
        response.status_code = 200
    return from_row(OrderOut, order, replayed=replayed)


@router.get("/v1/members/{member_id}/points/ledger", response_model=LedgerPage, summary="Points history, newest first")
def ledger(member_id: MemberId, session: SessionDep, caller: MemberDataCaller,
           limit: Annotated[int, Query(ge=1, le=200)] = 50,
           before_id: Annotated[int | None, Query(ge=1)] = None) -> LedgerPage:
    get_member(session, member_id=member_id)
    entries = points.ledger_page(session, member_id=member_id, limit=limit, before_id=before_id)
    return LedgerPage(entries=[from_row(LedgerEntryOut, e) for e in entries],
                      next_before_id=entries[-1].id if len(entries) == limit else None)


@router.post("/v1/members/{member_id}/points/adjustments", response_model=LedgerEntryOut, status_code=201,
             summary="Correct a balance, with a reason (admin)")
def adjust(member_id: MemberId, body: AdjustmentIn, response: Response, session: SessionDep, caller: CorrectionCaller,
           now: NowDep) -> LedgerEntryOut:
    get_member(session, member_id=member_id)
    entry, replayed = points.adjust_points(session, member_id=member_id, adjustment_id=body.adjustment_id,
                                           points=body.points, reason=body.reason, actor=caller.actor, now=now)
    if replayed:
        response.status_code = 200
    return from_row(LedgerEntryOut, entry)


@router.get("/v1/members/{member_id}/coupons", response_model=list[CouponOut], summary="The member's coupons")
def coupons(member_id: MemberId, session: SessionDep, caller: MemberDataCaller, now: NowDep) -> list[CouponOut]:
    get_member(session, member_id=member_id)
    return [from_row(CouponOut, c, state=rebates.state_of(c, now=now))
            for c in rebates.coupons_of(session, member_id=member_id)]


CouponCode = Annotated[str, Path(min_length=1, max_length=32)]


@router.post("/v1/members/{member_id}/coupons/{code}/redemption", response_model=CouponActionOut, status_code=201,
             summary="Redeem the member's coupon at a till or in the app, once (idempotent by redemption_id: a "
                     "replay answers 200; 409 coupon_redeemed / coupon_voided, 422 coupon_expired)")
def redeem_coupon(member_id: MemberId, code: CouponCode, body: CouponRedemptionIn, response: Response,
                  session: SessionDep, caller: SalesCaller, now: NowDep) -> CouponActionOut:
    coupon, replayed = rebates.redeem_coupon(session, member_id=member_id, code=code,
                                             redemption_id=body.redemption_id, now=now)
    if replayed:
        response.status_code = 200
    return from_row(CouponActionOut, coupon, state=rebates.state_of(coupon, now=now), replayed=replayed)


@router.post("/v1/members/{member_id}/coupons/{code}/void", response_model=CouponActionOut, status_code=201,
             summary="Void an unused coupon, with a reason (supervisors, operators; idempotent by void_id; "
                     "409 coupon_redeemed)")
def void_coupon(member_id: MemberId, code: CouponCode, body: CouponVoidIn, response: Response, session: SessionDep,
                caller: CorrectionCaller, now: NowDep) -> CouponActionOut:
    coupon, replayed = rebates.void_coupon(session, member_id=member_id, code=code, void_id=body.void_id,
                                           reason=body.reason, actor=caller.actor, now=now)
    if replayed:
        response.status_code = 200
    return from_row(CouponActionOut, coupon, state=rebates.state_of(coupon, now=now), replayed=replayed)


@router.get("/v1/members/{member_id}/tier", response_model=TierOut,
            summary="Tier, spend, what the next tier needs, how long the tier is safe, history")
def tier(member_id: MemberId, session: SessionDep, caller: MemberDataCaller, now: NowDep) -> TierOut:
    view = tiers.explain_tier(session, member_id=member_id, now=now)
    served = organisations.treatment_of(session, member_id=member_id, own_tier=view.tier)
    return TierOut(**asdict(view), treatment=served.as_dict())
