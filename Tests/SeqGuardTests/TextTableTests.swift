import SeqGuard
import Testing

@Suite struct TextTableTests {
    @Test func columnsAlignAndTheLastCellIsNotPadded() {
        let text = TextTable.render([["NAME", "STATE", "NOTE"], ["d1", "ok", "fine"], ["device-two", "held", ""]])
        #expect(text == "NAME        STATE  NOTE\nd1          ok     fine\ndevice-two  held   \n")
        #expect(TextTable.render([]) == "")
        #expect(TextTable.render([["A", "B"], ["x", "y", "extra"]]) == "A  B\nx  y  extra\n")
    }
}
