-- wrk script: POST real orders (one JSON body per line of the file in BODIES) round-robin.
-- Usage: BODIES=orders.jsonl PATH_=/v1/eta wrk -s bench/serve_orders.lua URL
local bodies = {}
local index = 0

function init(args)
  local path = os.getenv("BODIES")
  for line in io.lines(path) do
    if #line > 0 then bodies[#bodies + 1] = line end
  end
  index = math.random(#bodies)
end

function request()
  index = index % #bodies + 1
  return wrk.format("POST", os.getenv("PATH_") or "/v1/eta",
    {["Content-Type"] = "application/json"}, bodies[index])
end
