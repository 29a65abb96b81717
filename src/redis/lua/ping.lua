-- ping.lua: a real script call for /readyz: proves the server runs Lua and that the script
-- cache path (EVALSHA, reloaded on NOSCRIPT) works. KEYS: none. ARGV: none. Returns 1.
return 1
