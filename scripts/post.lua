-- wrk script: POST the reference 9-parcel payload (scripts/payload.json).
local f = assert(io.open((os.getenv("PAYLOAD") or "scripts/payload.json"), "rb"))
wrk.method = "POST"
wrk.body = f:read("*a"):gsub("%s+$", "")
f:close()
wrk.headers["Content-Type"] = "application/json"
