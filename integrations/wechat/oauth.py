"""WeChat's OAuth web flow through wechatpy, with a timeout and a configurable API base."""

from __future__ import annotations

from typing import Any

from wechatpy.oauth import WeChatOAuth


class LoyaltyWeChatOAuth(WeChatOAuth):  # type: ignore[misc]
    def __init__(self, app_id: str, secret: str, redirect_uri: str, state: str, *, api_base_url: str,
                 timeout: float):
        super().__init__(app_id, secret, redirect_uri, scope="snsapi_base", state=state)
        self.API_BASE_URL = api_base_url
        self.timeout = timeout

    def _request(self, method: str, url_or_endpoint: str, **kwargs: Any) -> Any:
        kwargs.setdefault("timeout", self.timeout)  # wechatpy passes none
        return super()._request(method, url_or_endpoint, **kwargs)
