import Testing
@testable import Host

/// Where handles' PeerConnections go when the host runs several media loops.
@Suite struct LoopPlacementTests {
    let room = LoopPlacement.GroupKey(plugin: 1, group: 1234)
    let otherRoom = LoopPlacement.GroupKey(plugin: 1, group: 5678)

    @Test func handlesWithoutAGroupGoToTheLeastLoadedLoop() {
        var p = LoopPlacement(loops: 3)
        #expect((1...6).map { p.place($0) } == [0, 1, 2, 0, 1, 2])
        p.remove(2)
        #expect(p.place(7) == 1, "the loop that lost a handle is the least loaded")
        #expect(p.place(1) == 0, "a placed handle keeps its loop")
        #expect(p.handlesOnLoop == [2, 2, 2])
    }

    @Test func aGroupKeepsItsHandlesOnOneLoopAndGroupsSpreadByLoad() {
        var p = LoopPlacement(loops: 2)
        for h in UInt64(1)...4 { p.setGroup(h, room) }
        for h in UInt64(5)...6 { p.setGroup(h, otherRoom) }
        #expect((1...4).map { p.place($0) } == [0, 0, 0, 0])
        #expect(p.place(5) == 1 && p.place(6) == 1, "the next room goes where the load is lighter")
        #expect(p.place(7) == 1, "so does a handle of no room")
    }

    @Test func aGroupTakesTheLoopOfAMemberPlacedBeforeItJoined() {
        var p = LoopPlacement(loops: 2)
        #expect(p.place(1) == 0)
        #expect(p.place(2) == 1)
        // Handle 2 (a publisher that offered before its join) joins first: the room goes to its loop.
        p.setGroup(2, room)
        p.setGroup(1, room)
        #expect(p.loop(of: 1) == 0, "a placed handle is never moved")
        p.setGroup(3, room)
        #expect(p.place(3) == 1)
    }

    @Test func anEmptyGroupIsForgottenAndPluginsDoNotShareGroups() {
        var p = LoopPlacement(loops: 2)
        p.setGroup(1, room)
        #expect(p.place(1) == 0)
        p.remove(1)
        #expect(p.groupCount == 0 && p.handlesOnLoop == [0, 0])
        _ = p.place(9)  // loop 0 is busier now
        p.setGroup(2, room)
        #expect(p.place(2) == 1, "a group that emptied chooses again")
        p.setGroup(3, LoopPlacement.GroupKey(plugin: 2, group: 1234))
        p.setGroup(4, LoopPlacement.GroupKey(plugin: 2, group: 1234))
        #expect(p.place(3) == 0, "the same number from another plugin is another group")
        p.setGroup(4, nil)
        #expect(p.groupCount == 2)
        p.setGroup(3, nil)
        #expect(p.groupCount == 1, "the last member out takes the group with it")
    }

    @Test func aHandlePlacedBeforeItJoinedIsSeenMisplacedAndCanMove() {
        var p = LoopPlacement(loops: 2)
        p.setGroup(1, room)
        #expect(p.place(1) == 0)
        #expect(p.place(2) == 1, "an offer placed before its join")
        #expect(p.misplaced(2) == nil, "no group yet")
        p.setGroup(2, room)
        #expect(p.misplaced(2)! == (from: 1, to: 0))
        p.move(2, to: 0)
        #expect(p.loop(of: 2) == 0 && p.misplaced(2) == nil)
        #expect(p.handlesOnLoop == [2, 0])
        p.move(2, to: 5)
        #expect(p.loop(of: 2) == 0, "no loop 5: nothing moves")
    }
}
