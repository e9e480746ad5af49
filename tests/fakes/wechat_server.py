"""A small fake of WeChat's API on loopback, speaking its protocol: HTTP 200 with JSON, errors in errcode."""

from __future__ import annotations

import itertools
import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlparse


class FakeWeChat:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self._ids = itertools.count(1000)
        self.token = self._new_token()
        self.token_expires = time.time() + 7200
        self.token_requests = 0
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.unfollowed: set[str] = set()
        self.last_interaction: dict[str, float] = {}
        self.now = time.time
        self.menu: dict[str, Any] | None = None
        self.oauth_codes: dict[str, tuple[str, str]] = {}
        """code → (openid, unionid); each code works once."""
        self.authorising: list[str] = []
        """Codes the authorisation screen hands out, one per follower who agrees (``/connect/oauth2/authorize``)."""
        self.users: dict[str, dict[str, Any]] = {}
        """openid → what ``user/info`` answers (``unionid``, ``subscribe_scene``, ``qr_scene_str`` …)."""
        self.subscription_grants: dict[tuple[str, str], int] = {}
        """(openid, template id) → sends the follower still allows (each accept in the popup adds one)."""
        self.template_quota: int | None = None
        """Template sends WeChat still allows today (None = unlimited); at 0 it answers 45009."""

    def grant(self, openid: str, template_id: str) -> None:
        with self.lock:
            key = (openid, template_id)
            self.subscription_grants[key] = self.subscription_grants.get(key, 0) + 1

    def _new_token(self) -> str:
        return f"TOKEN-{next(self._ids)}"

    def rotate(self) -> None:
        """WeChat invalidated the token (e.g. someone called /cgi-bin/token)."""
        with self.lock:
            self.token = self._new_token()

    def handle(self, path: str, query: dict[str, list[str]], body: dict[str, Any]) -> dict[str, Any]:
        with self.lock:
            if path == "/cgi-bin/stable_token":
                self.token_requests += 1
                if body.get("force_refresh"):
                    self.token = self._new_token()
                return {"access_token": self.token, "expires_in": 7200}
            if path == "/cgi-bin/token":
                self.token_requests += 1
                self.token = self._new_token()
                return {"access_token": self.token, "expires_in": 7200}
            if path == "/sns/oauth2/access_token":
                code = (query.get("code") or [""])[0]
                if code not in self.oauth_codes:
                    return {"errcode": 40029, "errmsg": "invalid code"}
                openid, unionid = self.oauth_codes.pop(code)
                return {"access_token": "WEB-TOKEN", "expires_in": 7200, "refresh_token": "R", "openid": openid,
                        "unionid": unionid, "scope": "snsapi_base"}
            token = (query.get("access_token") or [""])[0]
            if not token:
                return {"errcode": 41001, "errmsg": "access_token missing"}
            if token != self.token:
                return {"errcode": 40001, "errmsg": "invalid credential"}
            self.calls.append((path, body or {k: v[0] for k, v in query.items() if k != "access_token"}))
            if path == "/cgi-bin/user/info":
                return self._user_info((query.get("openid") or [""])[0])
            if path == "/cgi-bin/user/info/batchget":
                infos = [self._user_info(u.get("openid", "")) for u in body.get("user_list", [])]
                refused = next((i for i in infos if i.get("errcode")), None)
                return refused or {"user_info_list": infos}
            openid = body.get("touser", "")
            if openid.startswith("o-bad"):
                return {"errcode": 40003, "errmsg": "invalid openid"}
            if openid in self.unfollowed:
                return {"errcode": 43004, "errmsg": "require subscribe"}
            if path == "/cgi-bin/menu/create":
                self.menu = body
                return {"errcode": 0, "errmsg": "ok"}
            if path == "/cgi-bin/qrcode/create":
                scene = body["action_info"]["scene"]["scene_str"]
                return {"ticket": f"TICKET-{scene}", "url": f"http://weixin.qq.com/q/{scene}"}
            if path == "/cgi-bin/message/template/send":
                if self.template_quota is not None:
                    if self.template_quota < 1:
                        return {"errcode": 45009, "errmsg": "reach max api daily quota limit"}
                    self.template_quota -= 1
                return {"errcode": 0, "errmsg": "ok", "msgid": next(self._ids)}
            if path == "/cgi-bin/message/subscribe/bizsend":
                key = (openid, body.get("template_id", ""))
                if self.subscription_grants.get(key, 0) < 1:
                    return {"errcode": 43101, "errmsg": "user refuse to accept the msg"}
                self.subscription_grants[key] -= 1
                return {"errcode": 0, "errmsg": "ok", "msgid": next(self._ids)}
            if path == "/cgi-bin/message/custom/send":
                last = self.last_interaction.get(openid)
                if last is None or self.now() - last > 48 * 3600:
                    return {"errcode": 45015, "errmsg": "response out of time limit"}
                return {"errcode": 0, "errmsg": "ok"}
            return {"errcode": 404, "errmsg": f"unknown endpoint {path}"}

    def _user_info(self, openid: str) -> dict[str, Any]:
        if openid not in self.users:
            return {"errcode": 40003, "errmsg": "invalid openid"}
        info = self.users[openid]
        return {"subscribe": 0 if openid in self.unfollowed else 1, "openid": openid, "language": "zh_CN",
                "subscribe_scene": info.get("subscribe_scene", "ADD_SCENE_QR_CODE"),
                "qr_scene_str": info.get("qr_scene_str", ""),
                **({"unionid": info["unionid"]} if info.get("unionid") else {})}


@contextmanager
def fake_wechat() -> Iterator[tuple[str, FakeWeChat]]:
    fake = FakeWeChat()

    class Handler(BaseHTTPRequestHandler):
        def _answer(self, payload: dict[str, Any]) -> None:
            data = json.dumps(payload).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_POST(self) -> None:  # noqa: N802
            raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))  # wechatpy sends no Content-Type
            url = urlparse(self.path)
            self._answer(fake.handle(url.path, parse_qs(url.query), json.loads(raw or b"{}")))

        def do_GET(self) -> None:  # noqa: N802
            url = urlparse(self.path)
            query = parse_qs(url.query)
            if url.path == "/connect/oauth2/authorize":
                # WeChat's authorisation screen once the follower agrees: back to the redirect_uri with a code.
                with fake.lock:
                    code = fake.authorising.pop(0)
                self.send_response(302)
                self.send_header("Location", f"{query['redirect_uri'][0]}?code={code}&state={query['state'][0]}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self._answer(fake.handle(url.path, query, {}))

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/cgi-bin/", fake
    finally:
        server.shutdown()
        server.server_close()
