-- wrk script for benches/load.sh: each request carries the DPoP-bound token
-- and the next unused proof from the file the load server wrote (every
-- proof is good once: a proof used twice is a replay, refused with 401 and
-- counted as non-2xx, which shows when the file ran out).
--   wrk -s benches/dpop.lua URL -- PROOFS_FILE TOKEN
local proofs = {}
local token
local next_proof = 0

init = function(args)
  for line in io.lines(args[1]) do
    proofs[#proofs + 1] = line
  end
  token = args[2]
end

request = function()
  next_proof = next_proof + 1
  local proof = proofs[next_proof] or proofs[#proofs]
  return wrk.format("GET", nil, { ["Authorization"] = "DPoP " .. token, ["DPoP"] = proof })
end
