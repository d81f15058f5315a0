//! A minimal FIT encoder for the test fixture: a 14-byte header, definition and data messages
//! (`file_id`, `record`s, `session`, `activity`), and the FIT CRC-16. It writes
//! `tests/fixtures/garmin/activity_2024-03-12.fit`, so the fixture's provenance is this code.

/// Seconds from the Unix epoch to the FIT epoch (1989-12-31T00:00:00Z).
const FIT_EPOCH: u32 = 631_065_600;

/// FIT base types used here.
const ENUM: u8 = 0x00;
const UINT8: u8 = 0x02;
const UINT16: u8 = 0x84;
const UINT32: u8 = 0x86;
const UINT32Z: u8 = 0x8C;

/// One field of a message: number, base type, and its little-endian bytes.
struct Field(u8, u8, Vec<u8>);

fn u8f(num: u8, base: u8, v: u8) -> Field {
    Field(num, base, vec![v])
}
fn u16f(num: u8, v: u16) -> Field {
    Field(num, UINT16, v.to_le_bytes().to_vec())
}
fn u32f(num: u8, base: u8, v: u32) -> Field {
    Field(num, base, v.to_le_bytes().to_vec())
}
fn u32s(num: u8, values: &[u32]) -> Field {
    Field(
        num,
        UINT32,
        values.iter().flat_map(|v| v.to_le_bytes()).collect(),
    )
}

/// The FIT CRC-16.
pub fn crc(bytes: &[u8]) -> u16 {
    const TABLE: [u16; 16] = [
        0x0000, 0xCC01, 0xD801, 0x1400, 0xF001, 0x3C00, 0x2800, 0xE401, 0xA001, 0x6C00, 0x7800,
        0xB401, 0x5000, 0x9C01, 0x8801, 0x4400,
    ];
    let mut crc = 0u16;
    for &b in bytes {
        let mut tmp = TABLE[usize::from(crc & 0xF)];
        crc = (crc >> 4) & 0x0FFF;
        crc = crc ^ tmp ^ TABLE[usize::from(b & 0xF)];
        tmp = TABLE[usize::from(crc & 0xF)];
        crc = (crc >> 4) & 0x0FFF;
        crc = crc ^ tmp ^ TABLE[usize::from((b >> 4) & 0xF)];
    }
    crc
}

/// Appends a definition message (local type `local`) and one data message per row.
fn message(out: &mut Vec<u8>, local: u8, global: u16, rows: &[Vec<Field>]) {
    let Some(first) = rows.first() else { return };
    out.push(0x40 | local);
    out.push(0); // reserved
    out.push(0); // little endian
    out.extend_from_slice(&global.to_le_bytes());
    out.push(u8::try_from(first.len()).unwrap());
    for Field(num, base, bytes) in first {
        out.extend_from_slice(&[*num, u8::try_from(bytes.len()).unwrap(), *base]);
    }
    for row in rows {
        out.push(local);
        for Field(_, _, bytes) in row {
            out.extend_from_slice(bytes);
        }
    }
}

/// A running activity: started 2024-03-12T06:30:00Z (07:30 local, UTC+1), 30 minutes, 5 km,
/// 60 s below zone 1 then 300/600/600/240/0 s in zones 1..5, average heart rate 150, max 172.
pub fn activity() -> Vec<u8> {
    let start = 1_710_225_000 - FIT_EPOCH;
    let end = start + 1800;
    let mut data = Vec::new();
    message(
        &mut data,
        0,
        0, // file_id
        &[vec![
            u8f(0, ENUM, 4), // type: activity
            u16f(1, 1),      // manufacturer: garmin
            u16f(2, 3113),   // product
            u32f(3, UINT32Z, 3_900_000_001),
            u32f(4, UINT32, start),
        ]],
    );
    let records: Vec<Vec<Field>> = (0..=6)
        .map(|i| {
            vec![
                u32f(253, UINT32, start + i * 300),
                u8f(3, UINT8, [120, 140, 150, 155, 160, 172, 150][i as usize]),
                u32f(5, UINT32, i * 83_333), // distance, cm
            ]
        })
        .collect();
    message(&mut data, 1, 20, &records);
    message(
        &mut data,
        2,
        18, // session
        &[vec![
            u32f(253, UINT32, end),
            u32f(2, UINT32, start),
            u8f(5, ENUM, 1), // sport: running
            u8f(6, ENUM, 0), // sub_sport: generic
            u32f(7, UINT32, 1_800_000),
            u32f(8, UINT32, 1_800_000),
            u32f(9, UINT32, 500_000),
            u16f(11, 410),
            u8f(16, UINT8, 150),
            u8f(17, UINT8, 172),
            u32s(65, &[60_000, 300_000, 600_000, 600_000, 240_000, 0]),
        ]],
    );
    message(
        &mut data,
        3,
        34, // activity
        &[vec![
            u32f(253, UINT32, end),
            u32f(0, UINT32, 1_800_000),
            u16f(1, 1),
            u8f(2, ENUM, 0),
            u8f(3, ENUM, 26),
            u8f(4, ENUM, 1),
            u32f(5, UINT32, end + 3600), // local_timestamp: UTC+1
        ]],
    );
    let mut file = vec![14, 0x20];
    file.extend_from_slice(&2132u16.to_le_bytes());
    file.extend_from_slice(&u32::try_from(data.len()).unwrap().to_le_bytes());
    file.extend_from_slice(b".FIT");
    let header_crc = crc(&file);
    file.extend_from_slice(&header_crc.to_le_bytes());
    file.extend_from_slice(&data);
    let file_crc = crc(&file);
    file.extend_from_slice(&file_crc.to_le_bytes());
    file
}
