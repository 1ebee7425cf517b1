-- A HEPv3 dissector for tshark, which has none built in (Wireshark 4.0):
-- it walks the chunks of a HEP3 packet (vendor 0), shows the addresses,
-- ports, agent ID, auth key and node name as hep3.* fields, and hands the
-- payload to Wireshark's own SIP dissector. hep_test.go loads it with
--   tshark -X lua_script:hep3.lua
-- It finds HEP by its "HEP3" magic on any UDP port.
local hep3 = Proto("hep3", "HEPv3 (Homer Encapsulation Protocol)")

local f = {
	family = ProtoField.uint8("hep3.family", "IP family"),
	proto = ProtoField.uint8("hep3.ip_proto", "IP protocol"),
	src4 = ProtoField.ipv4("hep3.src", "Source address"),
	dst4 = ProtoField.ipv4("hep3.dst", "Destination address"),
	src6 = ProtoField.ipv6("hep3.src6", "Source address"),
	dst6 = ProtoField.ipv6("hep3.dst6", "Destination address"),
	sport = ProtoField.uint16("hep3.sport", "Source port"),
	dport = ProtoField.uint16("hep3.dport", "Destination port"),
	sec = ProtoField.uint32("hep3.time_sec", "Seconds"),
	usec = ProtoField.uint32("hep3.time_usec", "Microseconds"),
	ptype = ProtoField.uint8("hep3.proto_type", "Protocol type"),
	agent = ProtoField.uint32("hep3.agent_id", "Capture agent ID"),
	auth = ProtoField.string("hep3.auth_key", "Authentication key"),
	node = ProtoField.string("hep3.node_name", "Node name"),
	length = ProtoField.uint16("hep3.length", "Total length"),
}
hep3.fields = { f.family, f.proto, f.src4, f.dst4, f.src6, f.dst6, f.sport, f.dport,
	f.sec, f.usec, f.ptype, f.agent, f.auth, f.node, f.length }

local by_type = {
	[1] = f.family, [2] = f.proto, [3] = f.src4, [4] = f.dst4, [5] = f.src6, [6] = f.dst6,
	[7] = f.sport, [8] = f.dport, [9] = f.sec, [10] = f.usec, [11] = f.ptype, [12] = f.agent,
	[14] = f.auth, [19] = f.node,
}

local sip = Dissector.get("sip")

local function dissect(buf, pinfo, tree)
	if buf:len() < 6 or buf(0, 4):string() ~= "HEP3" then
		return 0
	end
	local total = buf(4, 2):uint()
	if total > buf:len() then
		return 0
	end
	local t = tree:add(hep3, buf(0, total))
	t:add(f.length, buf(4, 2))
	local pos, payload = 6, nil
	while pos + 6 <= total do
		local vendor, typ, len = buf(pos, 2):uint(), buf(pos + 2, 2):uint(), buf(pos + 4, 2):uint()
		if len < 6 or pos + len > total then
			break
		end
		if vendor == 0 and len > 6 then
			local v = buf(pos + 6, len - 6)
			if typ == 15 then
				payload = v
			elseif by_type[typ] then
				t:add(by_type[typ], v)
			end
		end
		pos = pos + len
	end
	pinfo.cols.protocol = "HEP3"
	if payload then
		sip:call(payload:tvb(), pinfo, tree)
	end
	return total
end

hep3.dissector = dissect
hep3:register_heuristic("udp", function(buf, pinfo, tree)
	return dissect(buf, pinfo, tree) > 0
end)
