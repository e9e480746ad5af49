"""Member sessions: a member proved who they are (WeChat OAuth, an SMS code, or a trusted app server) and
holds a short-lived access token plus a rotating refresh token for their own record only."""
