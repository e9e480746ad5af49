"""WeChat's API through wechatpy: a token shared in PostgreSQL, and the channel adapter."""
