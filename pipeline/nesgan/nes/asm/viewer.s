; nesgan's level viewer: a fixed NROM program that shows a map from the level block and
; scrolls it horizontally with the d-pad. nesgan assembles it once (viewer.bin, committed) and
; at export time writes only the level block below $FC00, so users need no assembler.
; Rebuild: ca65 viewer.s -o viewer.o && ld65 -C viewer.cfg viewer.o -o viewer.bin
; (tests/test_nes_rom.py rebuilds it and compares the bytes).
;
; The two nametables side by side (vertical mirroring) are a ring of 64 8-px columns. The ring
; holds map columns left … left+63; the camera sees 33 of them. The window follows the camera
; 128 px behind it (4 attribute columns of 32 px), one column per frame, so the columns that
; change are always off-screen, and each column carries the two attribute bytes of its quarter
; of a 32-px attribute column (see nesgan/nes/rom.py for the level block's layout).

.setcpu "6502"

PPUCTRL   = $2000
PPUMASK   = $2001
PPUSTATUS = $2002
PPUSCROLL = $2005
PPUADDR   = $2006
PPUDATA   = $2007
DMC_FREQ  = $4010
JOY1      = $4016
FRAME_CTR = $4017

CTRL_NMI   = %10000000        ; NMI at the start of vblank
CTRL_INC32 = %00000100        ; $2007 steps down a column (32 bytes) instead of across
MASK_SHOW  = %00001010        ; background on, also in the leftmost 8 px; no sprites

PAD_RIGHT = %00000001         ; bits as read: A B Select Start Up Down Left Right (bit 0)
PAD_LEFT  = %00000010

SPEED  = 2                    ; camera pixels per frame
MARGIN = 4                    ; attribute columns (32 px) the window's left edge trails the camera

; The level block, written by nesgan (nesgan/nes/rom.py mirrors these addresses).
LEVEL_PALETTE  = $8000        ; 16 bytes for $3F00: backdrop, then 4 sub-palettes of 3
LEVEL_MAXX     = $8010        ; word: the camera's last x (map width - 256, or 0)
LEVEL_SCROLLY  = $8012        ; byte: vertical scroll, 0 or 8 (nametable row 16 at screen row 8)
LEVEL_MAXGROUP = $8013        ; byte: the window's last left attribute column (columns/4 - 16)
LEVEL_COLUMNS  = $8020        ; 32 bytes per 8-px column: 30 nametable bytes, 2 attribute bytes

.segment "ZEROPAGE"
camx:    .res 2               ; camera x in map pixels
left:    .res 2               ; first map column in the ring
col:     .res 2               ; the column put_column writes
pending: .res 1               ; 1: write `col` at the next vblank
ptr:     .res 2
ntaddr:  .res 2               ; PPU address of the column's top tile
target:  .res 2
attr:    .res 1
pad:     .res 1

.segment "CODE"

reset:
    sei
    cld
    ldx #$40
    stx FRAME_CTR             ; no APU frame IRQ
    ldx #$FF
    txs
    inx                       ; x = 0
    stx PPUCTRL               ; no NMI while we set up
    stx PPUMASK               ; rendering off
    stx DMC_FREQ              ; no DMC IRQ
    bit PPUSTATUS             ; clear a stale vblank flag
@vblank1:                     ; PPU warm-up: two vblanks before it takes writes
    bit PPUSTATUS
    bpl @vblank1
    txa
@clear:
    sta $0000,x
    sta $0100,x
    sta $0200,x
    sta $0300,x
    sta $0400,x
    sta $0500,x
    sta $0600,x
    sta $0700,x
    inx
    bne @clear
@vblank2:
    bit PPUSTATUS
    bpl @vblank2

    lda #$3F                  ; background palette
    sta PPUADDR
    lda #$00
    sta PPUADDR
    ldx #0
@palette:
    lda LEVEL_PALETTE,x
    sta PPUDATA
    inx
    cpx #16
    bne @palette

    lda #CTRL_INC32           ; both nametables: map columns 0..63 (col = 0 after the clear)
    sta PPUCTRL
@fill:
    jsr put_column
    inc col
    lda col
    cmp #64
    bne @fill

    lda #CTRL_NMI             ; the first NMI sets the scroll and turns rendering on
    sta PPUCTRL
@forever:
    jmp @forever

nmi:
    pha
    txa
    pha
    tya
    pha
    lda pending
    beq @scroll
    lda #CTRL_NMI | CTRL_INC32
    sta PPUCTRL
    jsr put_column
    lda #0
    sta pending
@scroll:                      ; after every $2006 write: they share the PPU's scroll latch
    bit PPUSTATUS
    lda camx
    sta PPUSCROLL
    lda LEVEL_SCROLLY
    sta PPUSCROLL
    lda camx+1                ; bit 8 of x picks the nametable
    and #1
    ora #CTRL_NMI
    sta PPUCTRL
    lda #MASK_SHOW
    sta PPUMASK
    jsr read_pad
    jsr move_camera
    jsr plan_column
    pla
    tay
    pla
    tax
    pla
irq:
    rti

; Write map column `col` into its ring slot (col mod 64): 30 tiles down the nametable, then its
; two attribute bytes. Needs PPUCTRL's increment-32 bit set and the PPU idle (vblank or off).
put_column:
    lda col                   ; ptr = LEVEL_COLUMNS + 32 * col
    sta ptr
    lda col+1
    sta ptr+1
    ldx #5
@times32:
    asl ptr
    rol ptr+1
    dex
    bne @times32
    clc
    lda ptr
    adc #<LEVEL_COLUMNS
    sta ptr
    lda ptr+1
    adc #>LEVEL_COLUMNS
    sta ptr+1
    lda col                   ; slot bit 5: $2000 (left nametable) or $2400 (right)
    and #%00100000
    lsr a
    lsr a
    lsr a
    ora #$20
    sta ntaddr+1
    lda col
    and #31
    sta ntaddr
    bit PPUSTATUS
    lda ntaddr+1
    sta PPUADDR
    lda ntaddr
    sta PPUADDR
    ldy #0
@tiles:
    lda (ptr),y
    sta PPUDATA
    iny
    cpy #30
    bne @tiles
    ; attribute rows 2k and 2k+1 (k = col mod 4) of attribute column (col mod 32) / 4:
    ; address $23C0 (or $27C0) + 8 * row + column
    lda col
    and #3
    asl a
    asl a
    asl a
    asl a
    sta attr
    lda ntaddr
    lsr a
    lsr a
    ora attr
    ora #$C0
    sta attr
    lda ntaddr+1
    ora #$03
    sta PPUADDR
    lda attr
    sta PPUADDR
    lda (ptr),y               ; y = 30
    sta PPUDATA
    iny
    lda ntaddr+1
    ora #$03
    sta PPUADDR
    lda attr
    clc
    adc #8
    sta PPUADDR
    lda (ptr),y               ; y = 31
    sta PPUDATA
    rts

; pad = the buttons held now (a 1 shifted in first falls out after the 8th read).
read_pad:
    lda #1
    sta JOY1
    sta pad
    lsr a
    sta JOY1
@bit:
    lda JOY1
    lsr a
    rol pad
    bcc @bit
    rts

; Right/Left move the camera SPEED px, clamped to 0 … LEVEL_MAXX.
move_camera:
    lda pad
    and #PAD_RIGHT
    beq @left
    clc
    lda camx
    adc #SPEED
    sta camx
    lda camx+1
    adc #0
    sta camx+1
    lda LEVEL_MAXX+1
    cmp camx+1
    bcc @clamp
    bne @left
    lda LEVEL_MAXX
    cmp camx
    bcs @left
@clamp:
    lda LEVEL_MAXX
    sta camx
    lda LEVEL_MAXX+1
    sta camx+1
@left:
    lda pad
    and #PAD_LEFT
    beq @done
    sec
    lda camx
    sbc #SPEED
    sta camx
    lda camx+1
    sbc #0
    sta camx+1
    bcs @done
    lda #0
    sta camx
    sta camx+1
@done:
    rts

; Move the ring's window one column towards 4 * clamp(camx / 32 - MARGIN, 0, LEVEL_MAXGROUP):
; set `col` to the column to write at the next vblank.
plan_column:
    lda camx
    sta target
    lda camx+1
    sta target+1
    ldx #5
@div32:
    lsr target+1
    ror target
    dex
    bne @div32
    lda target                ; camx < 8192, so camx / 32 fits a byte
    sec
    sbc #MARGIN
    bcs @low_ok
    lda #0
@low_ok:
    cmp LEVEL_MAXGROUP
    bcc @high_ok
    lda LEVEL_MAXGROUP
@high_ok:
    sta target
    lda #0
    sta target+1
    asl target
    rol target+1
    asl target
    rol target+1
    lda target+1
    cmp left+1
    bne @differ
    lda target
    cmp left
    beq @done
@differ:
    bcc @back
    clc                       ; forward: column left+64 replaces column left
    lda left
    adc #64
    sta col
    lda left+1
    adc #0
    sta col+1
    inc left
    bne @pend
    inc left+1
    jmp @pend
@back:
    lda left                  ; back: column left-1 replaces column left+63
    bne @nowrap
    dec left+1
@nowrap:
    dec left
    lda left
    sta col
    lda left+1
    sta col+1
@pend:
    lda #1
    sta pending
@done:
    rts

.segment "VECTORS"
    .word nmi, reset, irq
